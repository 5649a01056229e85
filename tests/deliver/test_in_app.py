"""In-app messages: written in the transaction that marks the delivery sent, exactly once."""

from __future__ import annotations

import datetime as dt

import orjson
from sqlalchemy import select

from tenure.deliver import InAppChannel, claim, delivery_attempts_of
from tenure.govern.consent import ConsentReason, record_consent
from tenure.project import Project
from tenure.store._tables import in_app_messages, inbox
from tests.deliver.conftest import MovableClock, make_worker, outbox_rows, queue


def _payload(user: str, n: int) -> dict[str, object]:
    return {
        "user_id": user,
        "title": f"Tip {n}",
        "body": "Invite your team to share dashboards.",
        "consent_identifiers": [f"user_id:{user}"],
    }


def _messages(project: Project) -> list[tuple[int, str | None, str, str]]:
    with project.store.connect() as connection:
        rows = connection.execute(select(in_app_messages).order_by(in_app_messages.c.id))
        return [(r.outbox_id, r.user_id, r.title, r.status) for r in rows]


def test_in_app_message_lands_exactly_once(project: Project, clock: MovableClock) -> None:
    engine = project.store
    first = queue(engine, "in_app", _payload("u1", 1), key="tip-1", now=clock(), profile_id="p1")
    second = queue(engine, "in_app", _payload("u2", 2), key="tip-2", now=clock())
    # a worker claimed the first and died before writing it
    [lost] = claim(engine, "w-dead", clock(), 1, dt.timedelta(seconds=30))
    assert lost.delivery.id == first
    clock.advance(31)
    worker = make_worker(engine, {"in_app": InAppChannel(clock=clock)}, clock)

    counts = worker.deliver_once()
    clock.advance(3600)
    again = worker.deliver_once()

    assert (counts.sent, counts.resent, again.handled) == (2, 1, 0)
    assert _messages(project) == [(first, "u1", "Tip 1", "new"), (second, "u2", "Tip 2", "new")]
    rows = outbox_rows(engine)
    assert (rows[first].status, rows[first].resends, rows[first].attempts) == ("sent", 1, 2)
    with engine.connect() as connection:
        outcomes = [a.outcome for a in delivery_attempts_of(connection, first)]
        [message] = connection.execute(
            select(in_app_messages).where(in_app_messages.c.outbox_id == first)
        )
    assert outcomes == ["resend", "sent"]
    assert (message.account_id, message.profile_id, message.created_at) == (
        "acme",
        "p1",
        clock() - dt.timedelta(seconds=3600),
    )
    # one Message Sent per message, the resent one included, placed by the user id
    with engine.connect() as connection:
        payloads = connection.execute(select(inbox.c.payload).order_by(inbox.c.id)).scalars()
        sent = [orjson.loads(p) for p in payloads]
    assert [(e["event"], e["userId"], e["properties"]["message_id"]) for e in sent] == [
        ("Message Sent", "u1", str(first)),
        ("Message Sent", "u2", str(second)),
    ]


def test_in_app_respects_a_withdrawal_made_after_queueing(
    project: Project, clock: MovableClock
) -> None:
    engine = project.store
    outbox_id = queue(engine, "in_app", _payload("u1", 1), key="tip-1", now=clock())
    with engine.begin() as connection:
        record_consent(
            connection,
            "user_id:u1",
            "in_app",
            granted=False,
            reason=ConsentReason.PREFERENCE,
            source="settings page",
            at=clock(),
        )
    worker = make_worker(engine, {"in_app": InAppChannel(clock=clock)}, clock)
    assert worker.deliver_once().cancelled == 1
    assert _messages(project) == []
    assert outbox_rows(engine)[outbox_id].status == "cancelled"
