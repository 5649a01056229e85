"""The human-review queue: approve (then queue), reject, or let expire.

Approving runs every guardrail again, at approval time and except review
itself: consent may have been withdrawn, or caps filled, while the action
waited. Who decided and when is kept on the item and in the audit log.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, select, update

from tenure.decide._engine import Candidate, Decision
from tenure.decide._guardrails import Guardrails, Ledger, Verdict, decide_lock
from tenure.decide._policy import load_policies
from tenure.decide._state import load_states
from tenure.decide._templates import load_templates
from tenure.errors import NotFoundError, ReviewError
from tenure.store import append_audit
from tenure.store._tables import decisions, outbox, review_queue

if TYPE_CHECKING:
    from tenure.project import Project

__all__ = ["approve", "expire_reviews", "list_reviews", "reject"]


def list_reviews(connection: Connection, *, status: str | None = "pending") -> list[dict[str, Any]]:
    query = select(
        review_queue,
        decisions.c.account_id,
        decisions.c.policy,
        decisions.c.rule_id,
        decisions.c.channel,
        decisions.c.explanation,
    ).join(decisions, decisions.c.id == review_queue.c.decision_id)
    if status is not None:
        query = query.where(review_queue.c.status == status)
    return [dict(r._mapping) for r in connection.execute(query.order_by(review_queue.c.id))]


def expire_reviews(connection: Connection, now: dt.datetime) -> int:
    """Mark pending items past their expiry expired (their decisions too); returns how many."""
    due = [
        r.decision_id
        for r in connection.execute(
            select(review_queue.c.decision_id).where(
                (review_queue.c.status == "pending") & (review_queue.c.expires_at <= now)
            )
        )
    ]
    if due:
        connection.execute(
            update(review_queue)
            .where(review_queue.c.decision_id.in_(due))
            .values(status="expired", decided_at=now, decided_by="expiry")
        )
        connection.execute(
            update(decisions).where(decisions.c.id.in_(due)).values(status="expired")
        )
    return len(due)


def _pending(connection: Connection, review_id: int, now: dt.datetime) -> Any:
    row = connection.execute(select(review_queue).where(review_queue.c.id == review_id)).first()
    if row is None:
        raise NotFoundError(f"no review item {review_id} (see `tenure review list`)")
    if row.status == "expired":
        raise ReviewError(
            f"review item {review_id} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC; "
            "nothing was sent"
        )
    if row.status != "pending":
        raise ReviewError(f"review item {review_id} is already {row.status}")
    return row


def reject(
    project: Project, review_id: int, *, actor: str, note: str = "", now: dt.datetime | None = None
) -> None:
    at = now or project.clock()
    with project.store.begin() as connection:
        expire_reviews(connection, at)
    with project.store.begin() as connection:
        decide_lock(connection)
        row = _pending(connection, review_id, at)
        connection.execute(
            update(review_queue)
            .where(review_queue.c.id == review_id)
            .values(status="rejected", decided_by=actor, decided_at=at, note=note)
        )
        connection.execute(
            update(decisions).where(decisions.c.id == row.decision_id).values(status="rejected")
        )
        append_audit(
            connection,
            at=at,
            actor=actor,
            action="review.reject",
            target=row.decision_id,
            detail={"review_id": review_id, "note": note},
        )


def approve(
    project: Project, review_id: int, *, actor: str, note: str = "", now: dt.datetime | None = None
) -> str:
    """Approve and queue the action; returns the new status: queued, deferred or blocked."""
    from tenure.decide._cycle import outbox_row, preparer

    at = now or project.clock()
    settings = project.config.decide
    policies = load_policies(project.root / settings.policies_dir)
    templates = load_templates(project.root / settings.templates_dir)
    with project.store.begin() as connection:
        expire_reviews(connection, at)
    with project.store.begin() as connection:
        decide_lock(connection)
        row = _pending(connection, review_id, at)
        logged = connection.execute(
            select(decisions).where(decisions.c.id == row.decision_id)
        ).one()
        found = load_states(connection, [logged.account_id])
        state = found[0] if found else None
        rule = next(
            (
                r
                for r in policies.rules
                if r.policy == logged.policy and r.rule.id == logged.rule_id
            ),
            None,
        )
        if state is None or rule is None:
            raise ReviewError(
                f"cannot approve {review_id}: the account's state or rule "
                f"{logged.policy}/{logged.rule_id} is gone"
            )
        logged_checks = orjson.loads(logged.guardrails or "[]")
        # the holdout verdict (the group and arm that placed the customer) stays in the log
        holdout = [c for c in logged_checks if c.get("guardrail") == "holdout"]
        experiment = rule.rule.experiment
        if experiment is not None:
            arm = holdout[0].get("arm") if holdout else None
            if arm not in experiment.treatments:
                raise ReviewError(
                    f"cannot approve {review_id}: arm {arm!r} of experiment "
                    f"{experiment.id!r} is not among its arms with an action now "
                    f"({', '.join(experiment.treatments)})"
                )
            rule = rule.with_arm(arm)
        ledger = Ledger.load(connection, settings, at)
        contact = state.contacts[0] if state.contacts else None
        checks = tuple(
            Guardrails(settings).check(ledger, state, contact, rule.action, review=False)
        )
        verdicts = {c.verdict for c in checks}
        status = (
            "blocked"
            if Verdict.BLOCK in verdicts
            else ("deferred" if Verdict.DEFER in verdicts else "queued")
        )
        chosen = Candidate(rule, logged.value, checks, "chosen")
        decision = Decision(
            id=logged.id,
            cycle_id=logged.cycle_id,
            account_id=logged.account_id,
            decided_at=at,
            status=status,
            chosen=chosen,
            candidates=(chosen,),
            contact=contact,
            state=state,
            not_before=max([at, *(c.until for c in checks if c.until is not None)]),
            explanation="",
        )
        if status != "blocked":
            recipient, payload = preparer(project, templates)(logged.id, rule, state, contact)
            logged_action = orjson.loads(logged.action)
            versions = {logged_action["template"]: logged_action.get("template_version")}
            connection.execute(
                outbox.insert().values(**outbox_row(decision, recipient, payload, versions))
            )
        connection.execute(
            update(review_queue)
            .where(review_queue.c.id == review_id)
            .values(status="approved", decided_by=actor, decided_at=at, note=note)
        )
        connection.execute(
            update(decisions)
            .where(decisions.c.id == logged.id)
            .values(
                status=status,
                guardrails=orjson.dumps([*(c.as_dict() for c in checks), *holdout]).decode(),
            )
        )
        append_audit(
            connection,
            at=at,
            actor=actor,
            action="review.approve",
            target=logged.id,
            detail={"review_id": review_id, "note": note, "status": status},
        )
    return status
