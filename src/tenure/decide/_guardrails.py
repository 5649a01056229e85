"""Guardrails: the one place every action is checked, whatever path it came by.

Batch decisions, API calls and journey steps all ask :class:`Guardrails` about
an action before it is queued, inside the transaction that queues it (which
holds the store's decide lock, see :func:`decide_lock`), so two paths cannot
both see room under a cap and both use it. The checks, in order:

consent      the contact (any of their identifiers) withdrew this channel or all
             (an erasure is a withdrawal of all); or no statement and the
             channel needs an opt-in.                              → block
suppression  an urgent ticket opened recently, on message channels.  → block
frequency    the account already got ``max`` actions on the channel (or on all
             channels) in the rolling window.                      → block
budget       the campaign's (or the global) spend in the period plus this
             action's cost would pass the cap.                      → block
quiet hours  it is night in the contact's time zone.  → defer to the morning
review       a discount above the threshold, or a high-value account on a
             reviewed channel.                     → wait for a person's approval

The worker checks consent again just before sending, so an opt-out that
arrives while an action waits in the queue still wins.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, func, select, text

from tenure._config_decide import Channel, DecideSettings, parse_duration
from tenure.decide._policy import Action
from tenure.decide._state import Contact, CustomerState
from tenure.store._tables import consent, outbox

__all__ = ["COUNTED_STATUSES", "Check", "Guardrails", "Ledger", "Verdict", "decide_lock"]

#: Outbox states that used (or will use) a send: everything but cancelled and dead.
COUNTED_STATUSES = ("queued", "sending", "sent", "retry")


class Verdict(enum.StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    BLOCK = "block"
    DEFER = "defer"
    REVIEW = "review"
    HOLD = "hold"  # in a holdout group: decided, logged, not sent


@dataclass(frozen=True, slots=True)
class Check:
    guardrail: str
    verdict: Verdict
    detail: str
    until: dt.datetime | None = None  # a deferral's new start time
    #: A holdout verdict's group ("global", "campaign:<name>" or "experiment:<id>") and
    #: its percent held out (an experiment's: the arm's share), so that reports read them
    #: from the log rather than from the wording.
    group: str | None = None
    percent: float | None = None
    #: An experiment's verdict: the customer's arm.
    arm: str | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "guardrail": self.guardrail,
            "verdict": self.verdict.value,
            "detail": self.detail,
        }
        if self.until is not None:
            found["until"] = self.until.isoformat()
        if self.group is not None:
            found["group"] = self.group
            found["percent"] = self.percent
        if self.arm is not None:
            found["arm"] = self.arm
        return found


def decide_lock(connection: Connection) -> None:
    """Serialize deciders for the rest of *connection*'s transaction.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: a write statement
    first, which takes the database's write lock before anything is read (a
    read-then-write transaction could otherwise fail on a concurrent commit).
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(727274)"))
    else:
        connection.execute(text("UPDATE outbox SET id = id WHERE 1 = 0"))


@dataclass(slots=True)
class Ledger:
    """What the guardrails count, loaded once per transaction and kept current in it."""

    now: dt.datetime
    #: account → (channel, created_at) of its counted outbox rows in the longest cap window
    sends: dict[str, list[tuple[str, dt.datetime]]] = field(default_factory=dict)
    #: campaign → [(created_at, cost)] in the longest budget period ("" = every campaign)
    spend: dict[str, list[tuple[dt.datetime, float]]] = field(default_factory=dict)
    #: (identifier, channel) → granted, latest statement only
    consent: dict[tuple[str, str], bool] = field(default_factory=dict)

    @classmethod
    def load(cls, connection: Connection, settings: DecideSettings, now: dt.datetime) -> Ledger:
        ledger = cls(now=now)
        windows = [parse_duration(c.window) for c in settings.caps] or [dt.timedelta(0)]
        since = now - max(windows)
        rows = connection.execute(
            select(outbox.c.account_id, outbox.c.channel, outbox.c.created_at).where(
                (outbox.c.created_at > since) & outbox.c.status.in_(COUNTED_STATUSES)
            )
        )
        sends: dict[str, list[tuple[str, dt.datetime]]] = defaultdict(list)
        for row in rows:
            sends[row.account_id].append((row.channel, row.created_at))
        ledger.sends = dict(sends)
        periods = [parse_duration(b.period) for b in settings.budgets.values()]
        if settings.global_budget is not None:
            periods.append(parse_duration(settings.global_budget.period))
        if periods:
            start = now - max(periods)
            spent = connection.execute(
                select(outbox.c.campaign, outbox.c.created_at, outbox.c.cost).where(
                    (outbox.c.created_at > start) & outbox.c.status.in_(COUNTED_STATUSES)
                )
            )
            spend: dict[str, list[tuple[dt.datetime, float]]] = defaultdict(list)
            for row in spent:
                spend[row.campaign or ""].append((row.created_at, float(row.cost)))
            ledger.spend = dict(spend)
        last = select(func.max(consent.c.id)).group_by(consent.c.identifier, consent.c.channel)
        statements = connection.execute(
            select(consent.c.identifier, consent.c.channel, consent.c.granted).where(
                consent.c.id.in_(last.scalar_subquery())
            )
        )
        ledger.consent = {(r.identifier, r.channel): bool(r.granted) for r in statements}
        return ledger

    def record(self, account_id: str, channel: str, campaign: str | None, cost: float) -> None:
        """An action queued in this transaction counts for the next check at once."""
        self.sends.setdefault(account_id, []).append((channel, self.now))
        self.spend.setdefault(campaign or "", []).append((self.now, cost))


@dataclass(frozen=True, slots=True)
class Guardrails:
    settings: DecideSettings

    def check(
        self,
        ledger: Ledger,
        state: CustomerState,
        contact: Contact | None,
        action: Action,
        *,
        review: bool = True,
    ) -> list[Check]:
        """Every guardrail's verdict on *action* for *state*, stopping at the first block."""
        checks = [self._consent(ledger, contact, action.channel)]
        for step in (self._suppression, self._frequency, self._budget):
            if checks[-1].verdict is Verdict.BLOCK:
                break
            checks.append(step(ledger, state, action))
        if checks[-1].verdict is not Verdict.BLOCK:
            checks.append(self._quiet_hours(ledger.now, state, contact, action.channel))
            if review:
                checks.append(self._review(state, action))
        return checks

    # ------------------------------------------------------------ the checks
    def _consent(self, ledger: Ledger, contact: Contact | None, channel: Channel) -> Check:
        name = "consent"
        if channel in (Channel.EMAIL, Channel.IN_APP):
            if contact is None:
                return Check(name, Verdict.BLOCK, "no contact to send to")
            if channel is Channel.EMAIL and not contact.email:
                return Check(name, Verdict.BLOCK, f"{contact.profile_id} has no email address")
            if channel is Channel.IN_APP and not contact.user_id:
                return Check(name, Verdict.BLOCK, f"{contact.profile_id} has no user id")
        identifiers = contact.identifiers if contact is not None else ()
        withdrawn = sorted(
            f"{identifier} withdrew {scope}"
            for identifier in identifiers
            for scope in (channel.value, "all")
            if ledger.consent.get((identifier, scope)) is False
        )
        if withdrawn:
            return Check(name, Verdict.BLOCK, "; ".join(withdrawn))
        granted = [
            i for i in identifiers for s in (channel.value, "all") if ledger.consent.get((i, s))
        ]
        if granted:
            return Check(name, Verdict.PASS, f"granted by {granted[0]}")
        if self.settings.default_consent.get(channel, False):
            return Check(name, Verdict.PASS, f"no statement; {channel} allowed by default")
        return Check(name, Verdict.BLOCK, f"no statement and {channel} needs an opt-in")

    def _suppression(self, ledger: Ledger, state: CustomerState, action: Action) -> Check:
        name = "urgent_ticket"
        window = self.settings.urgent_ticket_suppression
        if window is None or action.channel not in self.settings.suppression_channels:
            return Check(name, Verdict.PASS, "not applied to this channel")
        days = state.features.get("days_since_urgent_ticket")
        limit = parse_duration(window).total_seconds() / 86400
        if days is not None and float(days) < limit:
            return Check(
                name, Verdict.BLOCK, f"urgent ticket {float(days):.0f} days ago (< {window})"
            )
        return Check(name, Verdict.PASS, f"no urgent ticket in {window}")

    def _frequency(self, ledger: Ledger, state: CustomerState, action: Action) -> Check:
        name = "frequency_cap"
        sent = ledger.sends.get(state.account_id, [])
        details = []
        for cap in self.settings.caps:
            if cap.channel is not None and cap.channel is not action.channel:
                continue
            since = ledger.now - parse_duration(cap.window)
            used = sum(
                1
                for channel, at in sent
                if at > since and (cap.channel is None or channel == cap.channel.value)
            )
            scope = cap.channel.value if cap.channel else "all channels"
            if used + 1 > cap.max:
                return Check(name, Verdict.BLOCK, f"{used} of {cap.max} on {scope} in {cap.window}")
            details.append(f"{used + 1}/{cap.max} on {scope} in {cap.window}")
        return Check(name, Verdict.PASS, "; ".join(details) or "no cap on this channel")

    def _budget(self, ledger: Ledger, state: CustomerState, action: Action) -> Check:
        name = "budget"
        caps = []
        if action.campaign and action.campaign in self.settings.budgets:
            caps.append((action.campaign, self.settings.budgets[action.campaign]))
        if self.settings.global_budget is not None:
            caps.append(("", self.settings.global_budget))
        details = []
        for campaign, cap in caps:
            since = ledger.now - parse_duration(cap.period)
            rows = (
                [r for rows in ledger.spend.values() for r in rows]
                if campaign == ""
                else ledger.spend.get(campaign, [])
            )
            spent = sum(cost for at, cost in rows if at > since)
            label = f"campaign {campaign}" if campaign else "global budget"
            if spent + action.cost > cap.budget + 1e-9:
                return Check(
                    name,
                    Verdict.BLOCK,
                    f"{label}: {spent:,.2f} spent + {action.cost:,.2f} > {cap.budget:,.2f} "
                    f"per {cap.period}",
                )
            details.append(f"{label}: {spent + action.cost:,.2f} of {cap.budget:,.2f}")
        return Check(name, Verdict.PASS, "; ".join(details) or "no budget cap")

    def _quiet_hours(
        self, now: dt.datetime, state: CustomerState, contact: Contact | None, channel: Channel
    ) -> Check:
        name = "quiet_hours"
        quiet = self.settings.quiet_hours
        if quiet is None or channel not in quiet.channels:
            return Check(name, Verdict.PASS, "not applied to this channel")
        zone_name = (contact.timezone if contact else None) or state.traits.get("timezone")
        try:
            zone = ZoneInfo(str(zone_name)) if zone_name else ZoneInfo(quiet.default_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(quiet.default_timezone)
        local = now.astimezone(zone)
        start, end = quiet.start, quiet.end
        t = local.time()
        in_quiet = (start <= t or t < end) if start > end else (start <= t < end)
        if not in_quiet:
            return Check(name, Verdict.PASS, f"{t:%H:%M} in {zone.key}")
        day = local.date() if t < end else local.date() + dt.timedelta(days=1)
        if start < end:
            day = local.date()
        until = dt.datetime.combine(day, end, tzinfo=zone).astimezone(dt.UTC)
        return Check(
            name, Verdict.DEFER, f"{t:%H:%M} in {zone.key} is quiet; waits to {end:%H:%M}", until
        )

    def _review(self, state: CustomerState, action: Action) -> Check:
        name = "review"
        review = self.settings.review
        if action.discount > review.max_discount:
            return Check(
                name,
                Verdict.REVIEW,
                f"discount {action.discount:.0%} is above {review.max_discount:.0%}",
            )
        if (
            review.min_value is not None
            and action.channel in review.channels
            and state.value >= review.min_value
        ):
            return Check(
                name,
                Verdict.REVIEW,
                f"account worth {state.value:,.0f} (≥ {review.min_value:,.0f}) on {action.channel}",
            )
        return Check(name, Verdict.PASS, "no review needed")
