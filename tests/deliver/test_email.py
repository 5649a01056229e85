"""Email through a real SMTP server (aiosmtpd on 127.0.0.1): headers, body, consent, errors."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from tenure._config_decide import SmtpSettings
from tenure.collect._inbox import load_inbox
from tenure.deliver import SmtpChannel, delivery_attempts_of
from tenure.errors import ConfigError
from tenure.govern.consent import ConsentReason, record_consent
from tenure.project import Project
from tenure.store._tables import inbox
from tests.deliver.conftest import (
    Mailbox,
    MovableClock,
    SmtpServer,
    email_payload,
    make_worker,
    outbox_rows,
    queue,
    start_smtp,
)

KEY = "9f2c1d4e5b6a7980aabbccddeeff0011"


def smtp_channel(server: SmtpServer, clock: MovableClock, **settings: object) -> SmtpChannel:
    return SmtpChannel(
        SmtpSettings(
            host=server.host,
            port=server.port,
            from_address="success@tenure.example",
            timeout_seconds=5,
            **settings,  # type: ignore[arg-type]
        ),
        clock=clock,
        **({"password": "hunter2-secret"} if "username" in settings else {}),  # type: ignore[arg-type]
    )


def test_email_arrives_with_message_id_from_key_and_unsubscribe_headers(
    project: Project, smtp_server: SmtpServer, clock: MovableClock
) -> None:
    payload = email_payload("dee@acme.com", 1, html="<p>Hello 1.</p>")
    outbox_id = queue(project.store, "email", payload, key=KEY, now=clock(), decision_id="d_42")
    worker = make_worker(project.store, {"email": smtp_channel(smtp_server, clock)}, clock)

    counts = worker.deliver_once()

    assert (counts.sent, counts.retried, counts.dead, counts.cancelled) == (1, 0, 0, 0)
    [message] = smtp_server.mailbox.messages
    assert message["Message-ID"] == f"<{KEY}@tenure>"
    assert message["List-Unsubscribe"] == "<https://t.example/unsubscribe/tok1>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Tenure-Decision"] == "d_42"
    assert message["To"] == "dee@acme.com"
    assert message["From"] == "success@tenure.example"
    assert message["Subject"] == "Your workspace, week 1"
    assert message["Date"] == "Sat, 01 Jun 2024 12:00:00 +0000"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().replace("\r\n", "\n") == payload["text"]
    assert html.get_content().strip() == "<p>Hello 1.</p>"
    assert smtp_server.mailbox.envelopes == [("success@tenure.example", ["dee@acme.com"])]

    row = outbox_rows(project.store)[outbox_id]
    assert (row.status, row.attempts, row.resends, row.sent_at) == ("sent", 1, 0, clock())
    assert (row.lease_owner, row.lease_until, row.last_error) == (None, None, None)
    with project.store.connect() as connection:
        [attempt] = delivery_attempts_of(connection, outbox_id)
    assert (attempt.attempt, attempt.worker, attempt.outcome) == (1, "w1", "sent")
    assert (
        attempt.detail
        == f"accepted by SMTP {smtp_server.host}:{smtp_server.port} as <{KEY}@tenure>"
    )


def test_a_sent_email_leaves_one_message_sent_event_that_loads_into_the_lake(
    project: Project, smtp_server: SmtpServer, clock: MovableClock
) -> None:
    payload = email_payload("Dee@Acme.com", 1)
    outbox_id = queue(
        project.store, "email", payload, key=KEY, now=clock(), decision_id="d_42",
        campaign="onboarding",
    )  # fmt: skip
    worker = make_worker(project.store, {"email": smtp_channel(smtp_server, clock)}, clock)
    assert worker.deliver_once().sent == 1
    clock.advance(3600)
    assert worker.deliver_once().handled == 0
    with project.store.connect() as connection:
        rows = connection.execute(select(inbox.c.message_id, inbox.c.source, inbox.c.payload))
        [(message_id, source, text)] = rows.all()
    event = orjson.loads(text)
    assert (message_id, source, event["event"]) == (
        f"email-{outbox_id}-sent",
        "tenure",
        "Message Sent",
    )
    assert event["context"] == {"traits": {"email": "Dee@Acme.com"}}
    assert event["properties"] == {
        "channel": "email", "message_id": KEY, "decision_id": "d_42", "campaign": "onboarding",
    }  # fmt: skip
    assert event["timestamp"] == "2024-06-01T12:00:00Z"
    loaded = load_inbox(project)
    assert loaded is not None
    assert (loaded.loaded, loaded.quarantined) == (1, 0)
    [lake] = project.index.con.execute(
        f"SELECT email, event FROM read_parquet('{project.lake.events_glob()}')"
    ).fetchall()
    assert lake == ("dee@acme.com", "Message Sent")


def test_a_second_pass_sends_nothing_again(
    sqlite_project: Project, smtp_server: SmtpServer, clock: MovableClock
) -> None:
    engine = sqlite_project.store
    for n in range(3):
        queue(engine, "email", email_payload(f"u{n}@acme.com", n), key=f"k{n}", now=clock())
    worker = make_worker(engine, {"email": smtp_channel(smtp_server, clock)}, clock, batch_size=2)

    assert worker.deliver_once().sent == 3
    clock.advance(3600)
    assert worker.deliver_once().sent == 0
    assert sorted(smtp_server.mailbox.message_ids()) == [
        "<k0@tenure>",
        "<k1@tenure>",
        "<k2@tenure>",
    ]


def test_consent_withdrawn_after_queueing_cancels_and_sends_nothing(
    project: Project, smtp_server: SmtpServer, clock: MovableClock
) -> None:
    engine = project.store
    kept = queue(engine, "email", email_payload("dee@acme.com", 1), key="kept", now=clock())
    # withdrawn through another of the person's identifiers, after decide queued it
    payload = email_payload("lee@acme.com", 2)
    payload["consent_identifiers"] = ["email:lee@acme.com", "user_id:u7"]
    dropped = queue(engine, "email", payload, key="dropped", now=clock())
    with engine.begin() as connection:
        record_consent(
            connection,
            "user_id:u7",
            "all",
            granted=False,
            reason=ConsentReason.UNSUBSCRIBE,
            source="test",
            at=clock(),
        )
    worker = make_worker(engine, {"email": smtp_channel(smtp_server, clock)}, clock)

    counts = worker.deliver_once()

    assert (counts.sent, counts.cancelled) == (1, 1)
    assert smtp_server.mailbox.message_ids() == ["<kept@tenure>"]
    rows = outbox_rows(engine)
    assert rows[kept].status == "sent"
    assert rows[dropped].status == "cancelled"
    assert rows[dropped].sent_at is None
    assert rows[dropped].last_error == "cancelled: user_id:u7 withdrew all"
    with engine.connect() as connection:
        [attempt] = delivery_attempts_of(connection, dropped)
    assert (attempt.outcome, attempt.detail) == ("cancelled", "user_id:u7 withdrew all")


def test_channel_default_off_cancels_when_nobody_opted_in(
    sqlite_project: Project, smtp_server: SmtpServer, clock: MovableClock
) -> None:
    engine = sqlite_project.store
    outbox_id = queue(engine, "email", email_payload("dee@acme.com"), key="k", now=clock())
    worker = make_worker(
        engine,
        {"email": smtp_channel(smtp_server, clock)},
        clock,
        defaults={"email": False},
    )
    assert worker.deliver_once().cancelled == 1
    assert outbox_rows(engine)[outbox_id].last_error == (
        "cancelled: no statement and email needs an opt-in"
    )
    assert smtp_server.mailbox.messages == []


def test_unreachable_server_is_retried_later(sqlite_project: Project, clock: MovableClock) -> None:
    from tests.deliver.conftest import free_port

    engine = sqlite_project.store
    outbox_id = queue(engine, "email", email_payload("dee@acme.com"), key="k", now=clock())
    closed = SmtpServer("127.0.0.1", free_port(), Mailbox())
    worker = make_worker(engine, {"email": smtp_channel(closed, clock)}, clock)

    assert worker.deliver_once().retried == 1
    row = outbox_rows(engine)[outbox_id]
    assert row.status == "retry"
    assert row.last_error.startswith(f"SMTP 127.0.0.1:{closed.port}: cannot connect (")
    assert clock() < row.not_before <= clock() + dt.timedelta(seconds=30)


def test_login_uses_the_password_and_never_shows_it(
    sqlite_project: Project, clock: MovableClock
) -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(*args: object) -> AuthResult:
        auth_data = args[-1]
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"the-right-one", handled=False)

    controller, server = start_smtp(Mailbox(), authenticator=authenticator, auth_require_tls=False)
    try:
        engine = sqlite_project.store
        outbox_id = queue(engine, "email", email_payload("dee@acme.com"), key="k", now=clock())
        worker = make_worker(
            engine, {"email": smtp_channel(server, clock, username="tenure")}, clock
        )
        assert worker.deliver_once().retried == 1
        row = outbox_rows(engine)[outbox_id]
        assert "hunter2-secret" not in row.last_error
        assert row.last_error == (
            f"SMTP 127.0.0.1:{server.port} rejected the login of 'tenure' (535); "
            "check delivery.smtp.username and the password"
        )
        assert set(logins) == {(b"tenure", b"hunter2-secret")}  # PLAIN, then LOGIN

        channel = SmtpChannel.from_settings(
            SmtpSettings(
                host=server.host, port=server.port, username="tenure", password_env="SMTP_PW"
            ),
            environ={"SMTP_PW": "the-right-one"},
            clock=clock,
        )
        worker = make_worker(engine, {"email": channel}, clock)
        clock.advance(3600)
        assert worker.deliver_once().sent == 1
        assert server.mailbox.message_ids() == ["<k@tenure>"]
    finally:
        controller.stop()


def test_missing_password_variable_is_a_config_error_naming_it(clock: MovableClock) -> None:
    settings = SmtpSettings(username="tenure", password_env="TENURE_SMTP_PASSWORD")
    with pytest.raises(ConfigError) as raised:
        SmtpChannel.from_settings(settings, environ={}, clock=clock)
    assert str(raised.value) == (
        "delivery.smtp: 1 problem\n  - delivery.smtp.password_env: environment variable "
        "TENURE_SMTP_PASSWORD to be set (it holds the SMTP password)"
    )
