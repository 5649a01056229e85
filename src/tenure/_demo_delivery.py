"""The demo's last act: decide, then deliver to local sinks it starts itself.

A real SMTP server (aiosmtpd) on loopback receives the emails and a small HTTP
server on loopback stands in for the CRM that CSM tasks are posted to, so the
demo exercises the same worker, channels and idempotency keys as production
without sending anything off the machine. The sinks' addresses are given to
the worker for this run only; the project's tenure.yaml is left as it was.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller

from tenure._config_decide import SmtpSettings, WebhookTarget

if TYPE_CHECKING:
    from tenure.decide import CycleReport, JourneyReport
    from tenure.deliver import DeliveryCounts
    from tenure.project import Project

__all__ = ["DeliveryDemo", "SentMessage", "decide_and_deliver"]


@dataclass(frozen=True, slots=True)
class SentMessage:
    channel: str
    to: str
    summary: str  # subject, title or task title
    rule: str
    why: str  # the decision's first line of explanation
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class DeliveryDemo:
    published: int
    decisions: CycleReport
    journeys: JourneyReport
    delivered: DeliveryCounts
    emails_received: int
    tasks_received: int
    sent: list[SentMessage] = field(default_factory=list)
    waiting_for_review: int = 0
    deferred: int = 0


class _Inbox:
    """Collects what the local SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"


@contextmanager
def _smtp_sink() -> Iterator[tuple[int, _Inbox]]:
    inbox = _Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd's readiness check needs a real one)
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@contextmanager
def _task_sink() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(201)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tasks", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def decide_and_deliver(project: Project, *, as_of: dt.datetime) -> DeliveryDemo:
    """Publish the state, run one decision cycle, and deliver what it queued to local sinks."""
    from sqlalchemy import select

    from tenure.decide import decide, load_policies, publish_state, run_journeys
    from tenure.deliver import NetworkChannel, build_channels, run_worker
    from tenure.store._tables import decisions, outbox

    published = publish_state(project, as_of=as_of)
    report = decide(project, now=as_of, actor="tenure demo")
    journeys = run_journeys(project, now=as_of, actor="tenure demo")
    with _smtp_sink() as (port, inbox), _task_sink() as (task_url, tasks):
        settings = project.config.delivery.model_copy(
            update={
                "smtp": SmtpSettings(host="127.0.0.1", port=port, from_address="csm@tenure.demo"),
                "webhooks": {"demo-crm": WebhookTarget(url=task_url)},
                "csm_task_webhook": "demo-crm",
            }
        )
        channels = build_channels(settings, environ=os.environ, clock=project.clock)
        try:
            counts = run_worker(project, once=True, channels=channels, worker_id="demo")
        finally:
            for channel in channels.values():
                if isinstance(channel, NetworkChannel):
                    channel.close()
        emails, task_count = len(inbox.messages), len(tasks)
    with project.store.connect() as connection:
        rows = connection.execute(
            select(outbox, decisions.c.explanation, decisions.c.policy, decisions.c.rule_id)
            .join(decisions, decisions.c.id == outbox.c.decision_id)
            .where(outbox.c.status == "sent")
            .order_by(outbox.c.channel, outbox.c.id)
        ).all()
    loaded = load_policies(project.root / project.config.decide.policies_dir)
    rules = {(r.policy, r.rule.id): r for r in loaded.rules}
    sent = []
    for row in rows:
        payload = json.loads(row.payload)
        body = payload.get("body") if isinstance(payload.get("body"), dict) else {}
        summary = payload.get("subject") or payload.get("title") or body.get("title", "")
        rule = rules.get((row.policy, row.rule_id))
        if rule is not None:
            because = rule.rule.description or rule.rule.when
        else:  # a journey's step
            because = f"journey {row.policy}, step {row.rule_id}"
        sent.append(
            SentMessage(
                channel=row.channel,
                to="CSM (CRM task)" if row.channel == "csm_task" else row.recipient,
                summary=str(summary),
                rule=f"{row.policy}/{row.rule_id}",
                why=f"{row.explanation.splitlines()[0].rsplit(':', 1)[0]}: {because}",
                idempotency_key=row.idempotency_key,
            )
        )
    return DeliveryDemo(
        published=published,
        decisions=report,
        journeys=journeys,
        delivered=counts,
        emails_received=emails,
        tasks_received=task_count,
        sent=sent,
        waiting_for_review=report.by_status.get("review", 0),
        deferred=report.by_status.get("deferred", 0),
    )
