"""The outbox contract: idempotent enqueue, claims under a lease, fenced completion."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

import tenure.deliver
from tenure.deliver import (
    DeliveryError,
    OutboxStatus,
    RetryPolicy,
    claim,
    delivery_attempts_of,
    enqueue,
    get_delivery,
    list_deliveries,
    mark_failed,
    mark_sent,
    release,
    retry_dead,
)
from tenure.errors import NotFoundError
from tenure.project import Project
from tenure.store._tables import outbox
from tests.deliver.conftest import MovableClock, email_payload, outbox_rows, queue

LEASE = dt.timedelta(seconds=60)


def test_exported_names() -> None:
    assert set(tenure.deliver.__all__) == {
        "Attempt",
        "AttemptOutcome",
        "Claimed",
        "CsmTaskChannel",
        "Delivery",
        "DeliveryCounts",
        "DeliveryError",
        "InAppChannel",
        "NetworkChannel",
        "OutboxStatus",
        "RetryPolicy",
        "SendError",
        "SmtpChannel",
        "StoreChannel",
        "WebhookChannel",
        "Worker",
        "build_channels",
        "claim",
        "default_worker_id",
        "delivery_attempts_of",
        "enqueue",
        "get_delivery",
        "list_deliveries",
        "mark_cancelled",
        "mark_failed",
        "mark_sent",
        "release",
        "retry_dead",
        "run_worker",
        "sign_webhook",
        "verify_webhook_signature",
    }
    assert all(hasattr(tenure.deliver, name) for name in tenure.deliver.__all__)


def test_enqueue_is_idempotent_and_leaves_the_commit_to_the_caller(
    project: Project, clock: MovableClock
) -> None:
    engine = project.store
    first = queue(engine, "email", email_payload("dee@acme.com"), key="k1", now=clock())
    again = queue(engine, "email", email_payload("other@acme.com"), key="k1", now=clock())
    assert again == first
    with engine.connect() as connection:  # rolled back: nothing stays
        enqueue(
            connection,
            idempotency_key="k2",
            account_id="acme",
            channel="email",
            recipient="x@acme.com",
            payload={},
            now=clock(),
        )
        connection.rollback()
    rows = outbox_rows(engine)
    assert list(rows) == [first]
    row = rows[first]
    assert (row.status, row.attempts, row.resends, row.cost) == ("queued", 0, 0, 0.0)
    assert (row.recipient, row.not_before, row.created_at) == ("dee@acme.com", clock(), clock())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=st.lists(st.sampled_from(["a", "b", "c", "d-1", "e.2"]), max_size=12))
def test_one_row_per_key_whatever_the_repeats(sqlite_project: Project, keys: list[str]) -> None:
    now = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    ids: dict[str, int] = {}
    with sqlite_project.store.begin() as connection:
        connection.execute(delete(outbox))  # the project outlives one example
        for key in keys:
            got = enqueue(
                connection,
                idempotency_key=key,
                account_id="acme",
                channel="webhook",
                recipient="crm",
                payload={"target": "crm", "body": {}},
                now=now,
            )
            assert ids.setdefault(key, got) == got
        stored = connection.execute(select(func.count()).select_from(outbox)).scalar_one()
    assert stored == len(set(keys))


@pytest.mark.parametrize(
    ("key", "channel", "message"),
    [
        ("has space", "email", "idempotency key 'has space' must be 1-64 characters"),
        ("x" * 65, "email", f"idempotency key '{'x' * 65}' must be 1-64 characters"),
        ("ok", "sms", "channel 'sms' is not one of email, in_app, webhook, csm_task"),
    ],
)
def test_enqueue_refuses_what_cannot_be_delivered(
    sqlite_project: Project, clock: MovableClock, key: str, channel: str, message: str
) -> None:
    with pytest.raises(DeliveryError, match="^" + message.replace("(", r"\(")):
        queue(sqlite_project.store, channel, {}, key=key, now=clock(), recipient="r")


def test_claim_takes_due_rows_and_a_lost_lease_makes_a_resend(
    project: Project, clock: MovableClock
) -> None:
    engine = project.store
    due = queue(engine, "email", email_payload("a@acme.com"), key="due", now=clock())
    later = queue(
        engine,
        "email",
        email_payload("b@acme.com"),
        key="later",
        now=clock(),
        not_before=clock() + dt.timedelta(hours=1),
    )
    [taken] = claim(engine, "w1", clock(), 10, LEASE)
    assert taken.resend is False
    assert (taken.delivery.id, taken.delivery.status, taken.delivery.attempts) == (
        due,
        OutboxStatus.SENDING,
        1,
    )
    row = outbox_rows(engine)[due]
    assert (row.status, row.lease_owner, row.lease_until, row.attempts) == (
        "sending",
        "w1",
        clock() + LEASE,
        1,
    )
    assert claim(engine, "w2", clock() + LEASE, 10, LEASE) == []  # lease still held

    clock.advance(LEASE.total_seconds() + 1)  # w1 died mid-send
    [again] = claim(engine, "w2", clock(), 1, LEASE)
    assert again.resend is True
    assert (again.delivery.id, again.delivery.attempts, again.delivery.resends) == (due, 2, 1)
    with engine.connect() as connection:
        [lost] = delivery_attempts_of(connection, due)
    assert (lost.attempt, lost.worker, lost.outcome) == (1, "w1", "resend")
    assert lost.detail == (
        "lease of w1 ran out at 2024-06-01 12:01:00 UTC mid-send; w2 sends again with the "
        "same idempotency key"
    )
    # the lost worker's late completion is refused; the new owner's is kept
    with engine.begin() as connection:
        assert not mark_sent(connection, taken.delivery, "w1", started_at=clock(), now=clock())
        assert mark_sent(connection, again.delivery, "w2", started_at=clock(), now=clock())
    assert outbox_rows(engine)[due].status == "sent"
    assert outbox_rows(engine)[later].status == "queued"


def test_release_gives_a_claim_back_as_if_never_taken(
    sqlite_project: Project, clock: MovableClock
) -> None:
    engine = sqlite_project.store
    outbox_id = queue(engine, "email", email_payload("a@acme.com"), key="k", now=clock())
    [taken] = claim(engine, "w1", clock(), 1, LEASE)
    with engine.begin() as connection:
        assert release(connection, taken.delivery, "w1")
    row = outbox_rows(engine)[outbox_id]
    assert (row.status, row.attempts, row.resends, row.lease_owner) == ("queued", 0, 0, None)


def test_dead_letters_can_be_retried_and_nothing_else(
    project: Project, clock: MovableClock
) -> None:
    engine = project.store
    outbox_id = queue(engine, "webhook", {"target": "crm", "body": {}}, key="k", now=clock())
    [taken] = claim(engine, "w1", clock(), 1, LEASE)
    with engine.begin() as connection:
        status = mark_failed(
            connection,
            taken.delivery,
            "w1",
            started_at=clock(),
            now=clock(),
            error="webhook crm answered 400",
            permanent=True,
            policy=RetryPolicy(),
            rng=random.Random(1),
        )
    assert status is OutboxStatus.DEAD
    with engine.connect() as connection:
        [dead] = list_deliveries(connection, status="dead")
        assert list_deliveries(connection, status="queued") == []
    assert (dead.id, dead.last_error) == (outbox_id, "webhook crm answered 400")

    clock.advance(60)
    with engine.begin() as connection:
        queued = retry_dead(connection, outbox_id, clock())
    assert (queued.status, queued.attempts, queued.not_before, queued.last_error) == (
        OutboxStatus.QUEUED,
        0,
        clock(),
        None,
    )
    with engine.begin() as connection, pytest.raises(DeliveryError) as raised:
        retry_dead(connection, outbox_id, clock())
    assert str(raised.value) == (
        f"delivery {outbox_id} is queued, not dead; only dead deliveries can be retried"
    )


def test_unknown_ids_and_statuses_say_what_to_do(sqlite_project: Project) -> None:
    with sqlite_project.store.connect() as connection:
        with pytest.raises(NotFoundError) as missing:
            get_delivery(connection, 999)
        assert str(missing.value) == "no delivery with id 999"
        assert missing.value.hint == "`tenure deliveries list` shows the deliveries and their ids"
        with pytest.raises(DeliveryError) as bad:
            list_deliveries(connection, status="lost")
    assert str(bad.value) == (
        "status 'lost' is not one of queued, sending, sent, retry, dead, cancelled"
    )


def test_postgres_workers_skip_rows_another_has_locked(
    project: Project, clock: MovableClock
) -> None:
    if project.store.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: SKIP LOCKED is the PostgreSQL path")
    engine = project.store
    first = queue(engine, "email", email_payload("a@acme.com"), key="k1", now=clock())
    second = queue(engine, "email", email_payload("b@acme.com"), key="k2", now=clock())
    with engine.connect() as holder:
        # another worker is in the middle of claiming the first row
        holder.execute(select(outbox).where(outbox.c.id == first).with_for_update())
        [taken] = claim(engine, "w2", clock(), 10, LEASE)
        assert taken.delivery.id == second
        holder.rollback()
    [rest] = claim(engine, "w3", clock(), 10, LEASE)
    assert rest.delivery.id == first
