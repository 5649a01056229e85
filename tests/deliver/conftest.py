"""Real parts for the delivery tests: an SMTP server, an HTTP server, a clock to move.

The servers run in threads of the test process and are shut down (and their
threads joined) by the fixtures, so nothing outlives a test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.message
import email.policy
import json
import random
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select

from tenure.deliver import NetworkChannel, RetryPolicy, StoreChannel, Worker, enqueue
from tenure.store._tables import outbox
from tests.conftest import FIXED_NOW


class MovableClock:
    """A clock the test moves by hand, so retries become due without sleeping."""

    def __init__(self, at: dt.datetime = FIXED_NOW) -> None:
        self.now = at

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------------- SMTP
class Mailbox:
    """An aiosmtpd handler keeping every message it accepted, in arrival order."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self._raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self._raw.append(envelope.original_content or envelope.content)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        if self.delay:
            # recorded before the 250 goes out: a sender killed now never learns it was sent
            await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        with self._lock:
            raw = list(self._raw)
        return [
            email.message_from_bytes(r, policy=email.policy.default)  # type: ignore[misc]
            for r in raw
        ]

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox


def start_smtp(mailbox: Mailbox, **smtp_parameters: Any) -> tuple[Controller, SmtpServer]:
    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, server_hostname="localhost", **smtp_parameters
    )
    controller.start()
    return controller, SmtpServer("127.0.0.1", port, mailbox)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    controller, server = start_smtp(Mailbox())
    try:
        yield server
    finally:
        controller.stop()


# ---------------------------------------------------------------------- HTTP
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers per path from a script of status codes (the last one repeats)."""

    scripts: dict[str, list[int]]
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str) -> int:
        with self.lock:
            seen = sum(1 for r in self.received if r.path == path)
        script = self.scripts.get(path, [404])
        return script[min(seen - 1, len(script) - 1)]

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            code = receiver.answer(self.path)
            reply = json.dumps({"status": code}).encode()
            self.send_response(code)
            if code == 429:
                self.send_header("Retry-After", "120")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def webhook_receiver() -> Iterator[Callable[[dict[str, list[int]]], WebhookReceiver]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(scripts: dict[str, list[int]]) -> WebhookReceiver:
        receiver = WebhookReceiver(scripts)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
        receiver.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        servers.append((server, thread))
        return receiver

    try:
        yield start
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join()


# -------------------------------------------------------------------- outbox
def email_payload(to: str, n: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "to": to,
        "subject": f"Your workspace, week {n}",
        "text": f"Hello {n}.\n\nUnsubscribe: https://t.example/unsubscribe/tok{n}\n",
        "html": None,
        "unsubscribe_url": f"https://t.example/unsubscribe/tok{n}",
        "consent_identifiers": [f"email:{to}", "user_id:u1"],
        **extra,
    }


def queue(
    engine: Engine, channel: str, payload: dict[str, Any], *, key: str, now: dt.datetime, **kw: Any
) -> int:
    recipient = kw.pop(
        "recipient", payload.get("to") or payload.get("target") or payload.get("user_id") or "-"
    )
    with engine.begin() as connection:
        return enqueue(
            connection,
            idempotency_key=key,
            account_id=kw.pop("account_id", "acme"),
            channel=channel,
            recipient=recipient,
            payload=payload,
            now=now,
            **kw,
        )


def outbox_rows(engine: Engine) -> dict[int, Any]:
    with engine.connect() as connection:
        return {r.id: r for r in connection.execute(select(outbox).order_by(outbox.c.id))}


def make_worker(
    engine: Engine,
    channels: dict[str, NetworkChannel | StoreChannel],
    clock: Callable[[], dt.datetime],
    *,
    worker_id: str = "w1",
    policy: RetryPolicy | None = None,
    lease_seconds: float = 120.0,
    seed: int = 7,
    defaults: dict[str, bool] | None = None,
    batch_size: int = 10,
) -> Worker:
    return Worker(
        engine,
        channels,
        worker_id=worker_id,
        clock=clock,
        rng=random.Random(seed),
        policy=policy or RetryPolicy(),
        lease=dt.timedelta(seconds=lease_seconds),
        consent_defaults=defaults
        or {"email": True, "in_app": True, "webhook": True, "csm_task": True},
        batch_size=batch_size,
    )
