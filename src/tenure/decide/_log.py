"""Reading the decision log back: one decision with everything behind it, and its outcomes."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, select

from tenure.errors import NotFoundError
from tenure.store._tables import decisions, outbox, review_queue

__all__ = ["explain_decision", "get_decision", "list_decisions"]

_JSON = ("action", "models", "scores", "features", "candidates", "guardrails", "experiment")


def get_decision(connection: Connection, decision_id: str) -> dict[str, Any]:
    """The logged decision, its JSON fields parsed, with its delivery and review."""
    row = connection.execute(select(decisions).where(decisions.c.id == decision_id)).first()
    if row is None:
        raise NotFoundError(f"no decision {decision_id!r} (see `tenure decisions`)")
    found = dict(row._mapping)
    for key in _JSON:
        if found.get(key):
            found[key] = orjson.loads(found[key])
    sends = connection.execute(
        select(
            outbox.c.id,
            outbox.c.channel,
            outbox.c.recipient,
            outbox.c.status,
            outbox.c.attempts,
            outbox.c.resends,
            outbox.c.sent_at,
            outbox.c.idempotency_key,
            outbox.c.last_error,
        ).where(outbox.c.decision_id == decision_id)
    )
    found["deliveries"] = [dict(r._mapping) for r in sends]
    review = connection.execute(
        select(review_queue).where(review_queue.c.decision_id == decision_id)
    ).first()
    found["review"] = dict(review._mapping) if review is not None else None
    return found


def explain_decision(connection: Connection, decision_id: str) -> str:
    """The stored explanation plus what happened since (delivery, review)."""
    found = get_decision(connection, decision_id)
    lines = [
        f"Decision {decision_id} at {found['decided_at']:%Y-%m-%d %H:%M} UTC "
        f"({found['path']} cycle {found['cycle_id']}).",
        found["explanation"],
    ]
    if found.get("policy"):
        lines.append(
            f"Policy {found['policy']} version {found['policy_version']}; "
            f"models {', '.join(f'{k} {v}' for k, v in found['models'].items()) or 'none'}; "
            f"features hash {found['features_hash'][:12]}."
        )
    review = found["review"]
    if review is not None:
        who = (
            f" by {review['decided_by']} at {review['decided_at']:%Y-%m-%d %H:%M}"
            if review["decided_at"]
            else f" (expires {review['expires_at']:%Y-%m-%d %H:%M})"
        )
        lines.append(f"Review: {review['status']}{who}.")
    for send in found["deliveries"]:
        lines.append(
            f"Delivery {send['id']}: {send['channel']} to {send['recipient']}: {send['status']}"
            f" after {send['attempts']} attempt(s)"
            + (f", last error: {send['last_error']}" if send["last_error"] else "")
            + "."
        )
    return "\n".join(lines)


def list_decisions(
    connection: Connection, *, account_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    query = select(
        decisions.c.id,
        decisions.c.decided_at,
        decisions.c.account_id,
        decisions.c.status,
        decisions.c.policy,
        decisions.c.rule_id,
        decisions.c.channel,
    )
    if account_id is not None:
        query = query.where(decisions.c.account_id == account_id)
    rows = connection.execute(query.order_by(decisions.c.decided_at.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]
