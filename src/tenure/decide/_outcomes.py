"""What happened after a decision: its message's fate and the account's next moves.

Two kinds of outcome link back to a decision:

* the message's own events — ``Message Delivered``, ``Opened``, ``Clicked``,
  ``Bounced``, ``Unsubscribed`` — carry its ``decision_id`` property
  (providers' webhooks and the product send them back through collection);
* the account's lifecycle events within the attribution window after the
  decision (``decide.attribution_window``): a purchase, a won deal or an
  order is *converted*, a plan change *changed*, a paid invoice *paid*, a
  cancellation *churned*.

Read from the lake (a batch-side step); the decision log itself stays in the
operational store.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ibis

from tenure.features._attribute import attributed_events

if TYPE_CHECKING:
    from tenure.warehouse import Warehouse

__all__ = ["MESSAGE_OUTCOMES", "Outcome", "decision_outcomes"]

MESSAGE_OUTCOMES = {
    "Message Delivered": "delivered",
    "Message Opened": "opened",
    "Message Clicked": "clicked",
    "Message Bounced": "bounced",
    "Message Dismissed": "dismissed",
    "Message Unsubscribed": "unsubscribed",
}
ACCOUNT_OUTCOMES = {
    "Subscription Started": "converted",
    "Opportunity Won": "converted",
    "Order Completed": "converted",
    "Subscription Changed": "changed",
    "Invoice Paid": "paid",
    "Subscription Canceled": "churned",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    decision_id: str
    kind: str  # delivered | opened | clicked | … | converted | churned
    event: str
    at: dt.datetime


def decision_outcomes(
    warehouse: Warehouse,
    decisions: Iterable[tuple[str, str, dt.datetime]],
    *,
    window: dt.timedelta,
) -> dict[str, list[Outcome]]:
    """Outcomes of (decision id, account id, decided at) triples, in time order."""
    wanted = list(decisions)
    found: dict[str, list[Outcome]] = {d: [] for d, _, _ in wanted}
    if not wanted or not warehouse.lake.has_events():
        return found
    events = attributed_events(warehouse)
    names = list(MESSAGE_OUTCOMES) + list(ACCOUNT_OUTCOMES)
    events = events.filter(events.event.isin(names))
    start = min(at for _, _, at in wanted)
    events = events.filter(events.timestamp >= ibis.literal(start, "timestamp('UTC')"))
    accounts = sorted({a for _, a, _ in wanted})
    rows = warehouse.backend.to_pyarrow(
        events.filter(
            events.account_id.isin(accounts) | events.event.isin(list(MESSAGE_OUTCOMES))
        ).select("event", "timestamp", "account_id", "properties")
    ).to_pylist()
    by_account: dict[str, list[tuple[str, str, dt.datetime]]] = {}
    for decision, account, at in wanted:
        by_account.setdefault(account, []).append((decision, account, at))
    for row in rows:
        event, at = row["event"], row["timestamp"]
        if event in MESSAGE_OUTCOMES:
            try:
                props = json.loads(row["properties"] or "{}")
            except ValueError:
                continue
            linked = props.get("decision_id") if isinstance(props, dict) else None
            if isinstance(linked, str) and linked in found:
                found[linked].append(Outcome(linked, MESSAGE_OUTCOMES[event], event, at))
            continue
        for decision, _, decided in by_account.get(row["account_id"], []):
            if decided <= at < decided + window:
                found[decision].append(Outcome(decision, ACCOUNT_OUTCOMES[event], event, at))
    for outcomes in found.values():
        outcomes.sort(key=lambda o: (o.at, o.kind))
    return found
