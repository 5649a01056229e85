"""Webhooks and CSM tasks against a real local HTTP server that fails on purpose."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import re
from collections.abc import Callable

import pytest

from tenure._config_decide import DeliverySettings, WebhookTarget
from tenure.deliver import (
    CsmTaskChannel,
    RetryPolicy,
    WebhookChannel,
    build_channels,
    delivery_attempts_of,
    verify_webhook_signature,
)
from tenure.errors import ConfigError
from tenure.project import Project
from tests.deliver.conftest import MovableClock, WebhookReceiver, make_worker, outbox_rows, queue

SECRET = b"whsec-test-secret"
POLICY = RetryPolicy(max_attempts=4, backoff_base_seconds=10, backoff_max_seconds=25)


def _channels(
    receiver: WebhookReceiver, clock: MovableClock
) -> tuple[WebhookChannel, CsmTaskChannel]:
    settings = DeliverySettings(
        webhooks={
            "crm": WebhookTarget(url=receiver.url("/flaky"), secret_env="CRM_SECRET"),
            "down": WebhookTarget(url=receiver.url("/down"), secret_env="CRM_SECRET"),
            "bad": WebhookTarget(url=receiver.url("/bad")),
            "busy": WebhookTarget(url=receiver.url("/busy")),
            "tasks": WebhookTarget(url=receiver.url("/tasks"), secret_env="CRM_SECRET"),
        },
        csm_task_webhook="tasks",
    )
    channels = build_channels(settings, environ={"CRM_SECRET": SECRET.decode()}, clock=clock)
    webhook, csm = channels["webhook"], channels["csm_task"]
    assert isinstance(webhook, WebhookChannel)
    assert isinstance(csm, CsmTaskChannel)
    return webhook, csm


def _drain(project: Project, worker_pass: Callable[[], object], clock: MovableClock) -> None:
    """Run passes, moving the clock to the next due retry, until nothing waits."""
    for _ in range(20):
        worker_pass()
        waiting = [r.not_before for r in outbox_rows(project.store).values() if r.status == "retry"]
        if not waiting:
            return
        clock.now = max(clock.now, min(waiting))
    raise AssertionError("the outbox did not settle")


def test_retries_back_off_then_succeed_or_go_dead(
    project: Project,
    webhook_receiver: Callable[[dict[str, list[int]]], WebhookReceiver],
    clock: MovableClock,
) -> None:
    receiver = webhook_receiver(
        {"/flaky": [500, 503, 200], "/down": [500], "/bad": [400], "/tasks": [200]}
    )
    webhook, csm = _channels(receiver, clock)
    engine = project.store
    ids = {
        name: queue(
            engine,
            "webhook",
            {"target": name, "body": {"event": "renewal_risk", "account": "acme", "n": i}},
            key=f"key-{name}",
            now=clock(),
        )
        for i, name in enumerate(["crm", "down", "bad"])
    }
    ids["task"] = queue(
        engine,
        "csm_task",
        {"body": {"title": "Call Acme about renewal"}, "consent_identifiers": []},
        key="key-task",
        now=clock(),
        recipient="tasks",
    )
    worker = make_worker(
        engine, {"webhook": webhook, "csm_task": csm}, clock, policy=POLICY, seed=11
    )
    start = clock()
    try:
        _drain(project, worker.deliver_once, clock)
    finally:
        webhook.close()

    rows = outbox_rows(engine)
    # first two 5xx then 200: sent on the third attempt, one Idempotency-Key throughout
    flaky = receiver.on("/flaky")
    assert [r.headers["idempotency-key"] for r in flaky] == ["key-crm"] * 3
    assert {r.body for r in flaky} == {b'{"account":"acme","event":"renewal_risk","n":0}'}
    assert (rows[ids["crm"]].status, rows[ids["crm"]].attempts) == ("sent", 3)
    # always 500: dead after max_attempts
    assert len(receiver.on("/down")) == 4
    assert (rows[ids["down"]].status, rows[ids["down"]].attempts) == ("dead", 4)
    assert rows[ids["down"]].last_error == 'webhook down answered 500: {"status": 500}'
    # a 400 is permanent: dead at once, never retried
    assert len(receiver.on("/bad")) == 1
    assert (rows[ids["bad"]].status, rows[ids["bad"]].attempts) == ("dead", 1)
    assert rows[ids["bad"]].last_error == 'webhook bad answered 400: {"status": 400}'
    assert "http://" not in rows[ids["bad"]].last_error  # the target's name, never its URL
    # the CSM task went to the configured CSM webhook
    [task] = receiver.on("/tasks")
    assert task.json == {"title": "Call Acme about renewal"}
    assert task.headers["idempotency-key"] == "key-task"
    assert rows[ids["task"]].status == "sent"

    # signatures verify with the secret (and by hand, as a receiver in another language would)
    for request in [*flaky, *receiver.on("/down"), task]:
        header = request.headers["tenure-signature"]
        assert verify_webhook_signature(SECRET, header, request.body, now=clock())
        assert not verify_webhook_signature(b"another", header, request.body, now=clock())
        t, v1 = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header).groups()  # type: ignore[union-attr]
        expected = hmac.new(SECRET, f"{t}.".encode() + request.body, hashlib.sha256).hexdigest()
        assert v1 == expected
        assert request.headers["content-type"] == "application/json"
    assert "tenure-signature" not in receiver.on("/bad")[0].headers  # no secret, no signature

    # the backoff schedule: full jitter under 10 s, 20 s, then the 25 s cap
    with engine.connect() as connection:
        down = delivery_attempts_of(connection, ids["down"])
        crm = delivery_attempts_of(connection, ids["crm"])
    assert [(a.attempt, a.outcome) for a in down] == [
        (1, "error"),
        (2, "error"),
        (3, "error"),
        (4, "error"),
    ]
    assert [(a.attempt, a.outcome) for a in crm] == [(1, "error"), (2, "error"), (3, "sent")]
    delays = [_delay(a.detail) for a in down[:3]]
    ceilings = [10, 20, 25]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert len(set(delays)) == 3  # jittered, not a fixed ladder
    assert down[3].detail == 'webhook down answered 500: {"status": 500} (gave up after 4 attempts)'
    assert down[0].started_at == start
    # each retry was made when it fell due, not before
    for before, after in itertools.pairwise(down):
        due = before.finished_at + dt.timedelta(seconds=_delay(before.detail) - 0.001)
        assert after.started_at >= due


def _delay(detail: str | None) -> float:
    match = re.search(r"\(retry in ([0-9.]+)s at ", detail or "")
    assert match, detail
    return float(match.group(1))


def test_backoff_is_reproducible_with_a_seeded_generator() -> None:
    import random

    first = [POLICY.delay(n, random.Random(3)) for n in range(1, 8)]
    again = [POLICY.delay(n, random.Random(3)) for n in range(1, 8)]
    assert first == again
    assert all(d <= 25 for d in first)


def test_429_waits_at_least_retry_after(
    sqlite_project: Project,
    webhook_receiver: Callable[[dict[str, list[int]]], WebhookReceiver],
    clock: MovableClock,
) -> None:
    receiver = webhook_receiver({"/busy": [429, 200]})
    webhook, _ = _channels(receiver, clock)
    engine = sqlite_project.store
    outbox_id = queue(engine, "webhook", {"target": "busy", "body": {}}, key="k", now=clock())
    worker = make_worker(engine, {"webhook": webhook}, clock, policy=POLICY)
    try:
        assert worker.deliver_once().retried == 1
        row = outbox_rows(engine)[outbox_id]
        assert row.not_before == clock() + dt.timedelta(seconds=120)  # above the 10 s ceiling
        clock.advance(119)
        assert worker.deliver_once().handled == 0
        clock.advance(1)
        assert worker.deliver_once().sent == 1
    finally:
        webhook.close()


def test_unreachable_target_is_retried_and_named_without_its_url(
    sqlite_project: Project, clock: MovableClock
) -> None:
    from tests.deliver.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/hook?token=s3cr3t"
    webhook = WebhookChannel({"crm": WebhookTarget(url=url, timeout_seconds=2)}, clock=clock)
    engine = sqlite_project.store
    outbox_id = queue(engine, "webhook", {"target": "crm", "body": {}}, key="k", now=clock())
    try:
        assert make_worker(engine, {"webhook": webhook}, clock).deliver_once().retried == 1
    finally:
        webhook.close()
    error = outbox_rows(engine)[outbox_id].last_error
    assert error.startswith("webhook crm: ConnectError: ")
    assert "s3cr3t" not in error


def test_every_missing_secret_is_reported_at_once(clock: MovableClock) -> None:
    settings = DeliverySettings(
        webhooks={
            "a": WebhookTarget(url="http://127.0.0.1:1/a", secret_env="A_SECRET"),
            "b": WebhookTarget(url="http://127.0.0.1:1/b", secret_env="B_SECRET"),
        }
    )
    with pytest.raises(ConfigError) as raised:
        build_channels(settings, environ={}, clock=clock)
    assert [p.key for p in raised.value.problems] == [
        "delivery.webhooks.a.secret_env",
        "delivery.webhooks.b.secret_env",
    ]
    assert "A_SECRET" in str(raised.value)


def test_a_damaged_payload_goes_dead_without_stopping_the_queue(
    sqlite_project: Project,
    webhook_receiver: Callable[[dict[str, list[int]]], WebhookReceiver],
    clock: MovableClock,
) -> None:
    from sqlalchemy import update

    from tenure.store._tables import outbox

    receiver = webhook_receiver({"/flaky": [200]})
    webhook, _ = _channels(receiver, clock)
    engine = sqlite_project.store
    broken = queue(engine, "webhook", {"target": "crm", "body": {}}, key="k1", now=clock())
    fine = queue(engine, "webhook", {"target": "crm", "body": {"ok": 1}}, key="k2", now=clock())
    with engine.begin() as connection:
        connection.execute(update(outbox).where(outbox.c.id == broken).values(payload="{oops"))
    try:
        counts = make_worker(engine, {"webhook": webhook}, clock).deliver_once()
    finally:
        webhook.close()
    assert (counts.sent, counts.dead) == (1, 1)
    rows = outbox_rows(engine)
    assert rows[fine].status == "sent"
    assert rows[broken].last_error == (
        f"delivery {broken} (webhook): payload has no 'body'; the action that queued it must "
        "be fixed"
    )
