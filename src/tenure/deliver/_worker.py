"""The delivery worker: claim due actions, re-check consent, send, record the outcome.

The loop is claim → send → complete, with the claim committed before the
send. A worker killed anywhere in between leaves its rows ``sending``; once
their lease runs out another worker (or this one, restarted) sends them again
with the same idempotency key. Nothing is lost; a copy is possible only for
rows counted in ``resends``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from tenure._config_decide import Channel
from tenure._tracing import tracer
from tenure.deliver._channels import NetworkChannel, StoreChannel, build_channels
from tenure.deliver._outbox import (
    Claimed,
    Delivery,
    OutboxStatus,
    RetryPolicy,
    begin_write,
    claim,
    mark_cancelled,
    mark_failed,
    mark_sent,
    release,
)
from tenure.errors import DeliveryError, SendError
from tenure.govern.consent import may_contact

if TYPE_CHECKING:
    from tenure.project import Clock, Project

__all__ = ["DeliveryCounts", "Worker", "default_worker_id", "run_worker"]

log = logging.getLogger("tenure.deliver")


@dataclass(slots=True)
class DeliveryCounts:
    """What a worker did. *resent* counts claims of rows whose earlier worker was lost."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    cancelled: int = 0
    resent: int = 0
    #: Claimed but handed back unsent (stopping, or the lease ran out before their turn).
    released: int = 0
    #: Sent, but the lease had gone to another worker, which records the outcome.
    lost: int = 0

    def __add__(self, other: DeliveryCounts) -> DeliveryCounts:
        return DeliveryCounts(
            *(
                a + b
                for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)
            )
        )

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.dead + self.cancelled + self.released + self.lost


class _LeaseLost(Exception):
    """Rolls back an in-app write whose delivery another worker now owns."""


def _consent_identifiers(delivery: Delivery) -> list[str]:
    """The payload's identifiers; for email also the address it actually goes to."""
    found = delivery.payload.get("consent_identifiers") or []
    identifiers = [str(i) for i in found] if isinstance(found, list) else []
    to = delivery.payload.get("to")
    if delivery.channel == Channel.EMAIL.value and isinstance(to, str) and to:
        identifiers.append(f"email:{to.strip().lower()}")
    return identifiers


class Worker:
    """Delivers due outbox rows through the channels it is given.

    Everything it touches is passed in: the store *engine*, the *channels*
    (by channel name), the *clock* that decides what is due and the random
    generator *rng* behind the backoff jitter.
    """

    def __init__(
        self,
        engine: Engine,
        channels: Mapping[str, NetworkChannel | StoreChannel],
        *,
        worker_id: str,
        clock: Clock,
        rng: random.Random,
        policy: RetryPolicy,
        lease: dt.timedelta,
        consent_defaults: Mapping[str, bool],
        batch_size: int = 10,
    ) -> None:
        if not 1 <= len(worker_id) <= 100:
            raise DeliveryError(f"worker id must be 1-100 characters (got {worker_id!r})")
        if batch_size < 1:
            raise DeliveryError(f"batch size must be at least 1 (got {batch_size})")
        self.engine = engine
        self.channels = dict(channels)
        self.worker_id = worker_id
        self.clock = clock
        self.rng = rng
        self.policy = policy
        self.lease = lease
        self.consent_defaults = {str(k): v for k, v in consent_defaults.items()}
        self.batch_size = batch_size

    def deliver_once(self, stop_event: threading.Event | None = None) -> DeliveryCounts:
        """Deliver everything due now, batch by batch, until nothing is due (or asked to stop)."""
        counts = DeliveryCounts()
        while stop_event is None or not stop_event.is_set():
            batch = claim(
                self.engine,
                self.worker_id,
                self.clock(),
                self.batch_size,
                self.lease,
                channels=self.channels,
            )
            if not batch:
                break
            for claimed in batch:
                self._process(claimed, counts, stop_event)
        return counts

    def run(
        self,
        *,
        once: bool = False,
        poll_seconds: float = 1.0,
        stop_event: threading.Event | None = None,
    ) -> DeliveryCounts:
        """Deliver until *stop_event* is set (or one pass with *once*), polling when idle."""
        stop = stop_event or threading.Event()
        total = DeliveryCounts()
        while not stop.is_set():
            total += self.deliver_once(stop)
            if once:
                break
            stop.wait(poll_seconds)
        return total

    # ------------------------------------------------------------ one row
    def _allowed(self, connection: Connection, delivery: Delivery) -> tuple[bool, str]:
        return may_contact(
            connection,
            _consent_identifiers(delivery),
            delivery.channel,
            defaults=self.consent_defaults,
        )

    def _process(
        self, claimed: Claimed, counts: DeliveryCounts, stop_event: threading.Event | None
    ) -> None:
        delivery = claimed.delivery
        with tracer().start_as_current_span("deliver.send") as span:
            span.set_attribute("tenure.delivery_id", delivery.id)
            span.set_attribute("tenure.channel", str(delivery.channel))
            span.set_attribute("tenure.resend", claimed.resend)
            self._process_one(claimed, counts, stop_event)

    def _process_one(
        self, claimed: Claimed, counts: DeliveryCounts, stop_event: threading.Event | None
    ) -> None:
        delivery = claimed.delivery
        started = self.clock()
        if (stop_event is not None and stop_event.is_set()) or (
            delivery.lease_until is not None and started >= delivery.lease_until
        ):
            with self.engine.begin() as connection:
                if release(connection, delivery, self.worker_id):
                    counts.released += 1
            return
        if claimed.resend:
            counts.resent += 1
            log.warning(
                "delivery %s (%s) is sent again: a worker was lost mid-send",
                delivery.id,
                delivery.idempotency_key,
            )
        channel = self.channels[delivery.channel]
        if isinstance(channel, StoreChannel):
            self._write(channel, delivery, started, counts)
            return
        with self.engine.connect() as connection:
            allowed, why = self._allowed(connection, delivery)
        if not allowed:
            self._cancel(delivery, why, counts)
            return
        try:
            detail = channel.send(delivery, delivery.payload)
        except SendError as error:
            self._fail(delivery, started, str(error), error.permanent, error.retry_after, counts)
            return
        except Exception as error:  # a channel bug must not stop the queue
            log.exception(
                "delivery %s: unexpected error in %s", delivery.id, type(channel).__name__
            )
            self._fail(delivery, started, f"{type(error).__name__}: {error}", False, None, counts)
            return
        with self.engine.begin() as connection:
            done = mark_sent(
                connection,
                delivery,
                self.worker_id,
                started_at=started,
                now=self.clock(),
                detail=detail,
            )
        if done:
            counts.sent += 1
        else:
            counts.lost += 1
            log.warning(
                "delivery %s was sent but its lease had passed to another worker", delivery.id
            )

    def _write(
        self,
        channel: StoreChannel,
        delivery: Delivery,
        started: dt.datetime,
        counts: DeliveryCounts,
    ) -> None:
        """Consent check, message write and sent mark in one transaction: exactly once."""
        try:
            with begin_write(self.engine) as connection:
                allowed, why = self._allowed(connection, delivery)
                if allowed:
                    detail = channel.send(delivery, delivery.payload, connection)
                    if not mark_sent(
                        connection,
                        delivery,
                        self.worker_id,
                        started_at=started,
                        now=self.clock(),
                        detail=detail,
                    ):
                        raise _LeaseLost
        except _LeaseLost:
            counts.lost += 1
            return
        except SendError as error:
            self._fail(delivery, started, str(error), error.permanent, None, counts)
            return
        if allowed:
            counts.sent += 1
        else:
            self._cancel(delivery, why, counts)

    def _cancel(self, delivery: Delivery, why: str, counts: DeliveryCounts) -> None:
        with self.engine.begin() as connection:
            if mark_cancelled(connection, delivery, self.worker_id, now=self.clock(), reason=why):
                counts.cancelled += 1
                log.info("delivery %s cancelled: %s", delivery.id, why)

    def _fail(
        self,
        delivery: Delivery,
        started: dt.datetime,
        error: str,
        permanent: bool,
        retry_after: float | None,
        counts: DeliveryCounts,
    ) -> None:
        with self.engine.begin() as connection:
            status = mark_failed(
                connection,
                delivery,
                self.worker_id,
                started_at=started,
                now=self.clock(),
                error=error,
                permanent=permanent,
                policy=self.policy,
                rng=self.rng,
                retry_after=retry_after,
            )
        if status is OutboxStatus.DEAD:
            counts.dead += 1
            log.warning("delivery %s is dead: %s", delivery.id, error)
        elif status is OutboxStatus.RETRY:
            counts.retried += 1
        else:
            counts.lost += 1


def default_worker_id() -> str:
    return f"{os.uname().nodename}-{os.getpid()}"[:100]


def run_worker(
    project: Project,
    *,
    worker_id: str | None = None,
    once: bool = False,
    poll_seconds: float = 1.0,
    stop_event: threading.Event | None = None,
    batch_size: int = 10,
    rng: random.Random | None = None,
    environ: Mapping[str, str] | None = None,
    channels: Mapping[str, NetworkChannel | StoreChannel] | None = None,
) -> DeliveryCounts:
    """Run a worker on *project*'s store and settings until stopped (or one pass with *once*).

    Channels come from ``delivery`` in tenure.yaml and the secrets from
    *environ* (default: the process environment) unless *channels* is given;
    channels built here are closed on return, channels passed in are the caller's.
    """
    settings = project.config.delivery
    built = None
    if channels is None:
        channels = built = build_channels(
            settings, environ=os.environ if environ is None else environ, clock=project.clock
        )
    worker = Worker(
        project.store,
        channels,
        worker_id=worker_id or default_worker_id(),
        clock=project.clock,
        rng=rng or random.Random(),  # noqa: S311 - jitter, not secrecy
        policy=RetryPolicy.from_settings(settings),
        lease=dt.timedelta(seconds=settings.lease_seconds),
        consent_defaults={c.value: v for c, v in project.config.decide.default_consent.items()},
        batch_size=batch_size,
    )
    try:
        return worker.run(once=once, poll_seconds=poll_seconds, stop_event=stop_event)
    finally:
        for channel in (built or {}).values():
            if isinstance(channel, NetworkChannel):
                channel.close()
