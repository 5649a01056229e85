"""The outbox: actions waiting to be delivered, claimed under a lease, completed once.

Decide enqueues an action inside its own transaction (:func:`enqueue`), so an
action exists exactly when its decision does. Workers then :func:`claim` due
rows and commit the claim *before* touching the network; that commit is what
lets a crashed worker's rows be found again. A row whose lease ran out while
it was ``sending`` may or may not have gone out, so it is sent again with the
same idempotency key (a *resend*, counted in ``resends``): delivery is at
least once, and receivers deduplicate on the key (the email's Message-ID, the
webhook's Idempotency-Key).

Every completion is fenced on the claim (same owner, same attempt number), so
a worker that lost its lease cannot overwrite what the new owner recorded.

On PostgreSQL, claims use ``SELECT … FOR UPDATE SKIP LOCKED`` and any number of
workers share the queue. SQLite has one writer at a time: claims take the
write lock up front (``BEGIN IMMEDIATE``) so they never deadlock on a lock
upgrade, and a project on SQLite should run one worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import json
import random
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tenure._config_decide import Channel, DeliverySettings
from tenure.collect._inbox import write_events
from tenure.deliver._sent import EVENT_SOURCE, sent_event
from tenure.errors import DeliveryError, NotFoundError
from tenure.store._tables import delivery_attempts, outbox

__all__ = [
    "Attempt",
    "AttemptOutcome",
    "Claimed",
    "Delivery",
    "OutboxStatus",
    "RetryPolicy",
    "begin_write",
    "claim",
    "delivery_attempts_of",
    "enqueue",
    "get_delivery",
    "list_deliveries",
    "mark_cancelled",
    "mark_failed",
    "mark_sent",
    "release",
    "retry_dead",
]

# The key becomes the left part of a Message-ID and an HTTP header value, so it
# keeps to characters both allow.
_KEY = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"
    CANCELLED = "cancelled"


class AttemptOutcome(enum.StrEnum):
    SENT = "sent"
    ERROR = "error"
    #: A lease ran out mid-send: the attempt's fate is unknown and the row is sent again.
    RESEND = "resend"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    idempotency_key: str
    decision_id: str | None
    account_id: str
    profile_id: str | None
    channel: str
    recipient: str
    campaign: str | None
    cost: float
    template: str | None
    template_version: int | None
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    resends: int
    not_before: dt.datetime
    lease_owner: str | None
    lease_until: dt.datetime | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row this worker now owns; *resend* when a lost worker may have sent it already."""

    delivery: Delivery
    resend: bool


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    outbox_id: int
    attempt: int
    worker: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how far apart a failing delivery is tried again."""

    max_attempts: int = 6
    backoff_base_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> RetryPolicy:
        return cls(
            settings.max_attempts, settings.backoff_base_seconds, settings.backoff_max_seconds
        )

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed *attempt* (1-based): exponential with full jitter.

        Full jitter (uniform between 0 and the exponential ceiling) spreads the
        retries of many deliveries that failed together, so a receiver coming
        back up is not hit by all of them at once.
        """
        ceiling = min(
            self.backoff_max_seconds, self.backoff_base_seconds * 2.0 ** min(attempt - 1, 60)
        )
        return rng.uniform(0.0, ceiling)


def _payload(text: str) -> dict[str, Any]:
    """The stored JSON; a damaged one reads as empty so its channel declares it dead.

    Raising here instead would fail every claim that includes the row, and one
    bad row would stop the whole queue.
    """
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        idempotency_key=row.idempotency_key,
        decision_id=row.decision_id,
        account_id=row.account_id,
        profile_id=row.profile_id,
        channel=row.channel,
        recipient=row.recipient,
        campaign=row.campaign,
        cost=row.cost,
        template=row.template,
        template_version=row.template_version,
        payload=_payload(row.payload),
        status=OutboxStatus(row.status),
        attempts=row.attempts,
        resends=row.resends,
        not_before=row.not_before,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        created_at=row.created_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
    )


def enqueue(
    connection: Connection,
    *,
    idempotency_key: str,
    account_id: str,
    channel: Channel | str,
    recipient: str,
    payload: Mapping[str, Any],
    now: dt.datetime,
    decision_id: str | None = None,
    profile_id: str | None = None,
    campaign: str | None = None,
    cost: float = 0.0,
    template: str | None = None,
    template_version: int | None = None,
    not_before: dt.datetime | None = None,
) -> int:
    """Queue one action inside the caller's transaction; the outbox id.

    Idempotent on *idempotency_key*: an existing key returns that row's id and
    inserts nothing (the row's content is not compared: one key, one action).
    Uses ``INSERT … ON CONFLICT DO NOTHING`` so a concurrent duplicate does not
    abort the caller's transaction on PostgreSQL.
    """
    if not _KEY.match(idempotency_key):
        raise DeliveryError(
            f"idempotency key {idempotency_key!r} must be 1-64 characters of letters, digits "
            "and .-_+=/!#$%&'*?^`{|}~ (it becomes the email's Message-ID)",
            hint="derive it with a hash, e.g. hashlib.sha256(...).hexdigest()",
        )
    try:
        channel = Channel(channel)
    except ValueError:
        raise DeliveryError(
            f"channel {channel!r} is not one of {', '.join(c.value for c in Channel)}"
        ) from None
    values = {
        "idempotency_key": idempotency_key,
        "decision_id": decision_id,
        "account_id": account_id,
        "profile_id": profile_id,
        "channel": channel.value,
        "recipient": recipient,
        "campaign": campaign,
        "cost": cost,
        "template": template,
        "template_version": template_version,
        "payload": json.dumps(payload, sort_keys=True, ensure_ascii=False),
        "status": OutboxStatus.QUEUED.value,
        "attempts": 0,
        "resends": 0,
        "not_before": not_before or now,
        "created_at": now,
    }
    dialect = connection.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(outbox).values(**values)
    elif dialect == "sqlite":
        statement = sqlite.insert(outbox).values(**values)
    else:  # pragma: no cover - create_store_engine accepts only these two
        raise DeliveryError(f"the outbox supports sqlite and postgresql, not {dialect!r}")
    connection.execute(statement.on_conflict_do_nothing(index_elements=["idempotency_key"]))
    found = connection.execute(
        select(outbox.c.id).where(outbox.c.idempotency_key == idempotency_key)
    ).scalar_one()
    return int(found)


@contextlib.contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A transaction that reads and then writes, committed on success.

    On SQLite it takes the write lock at once (``BEGIN IMMEDIATE``): a
    transaction that read first and then asks for the lock fails at once with
    "database is locked" if another writer committed in between, busy timeout
    or not.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


def claim(
    engine: Engine,
    worker_id: str,
    now: dt.datetime,
    limit: int,
    lease: dt.timedelta,
    *,
    channels: Collection[str] | None = None,
) -> list[Claimed]:
    """Take up to *limit* due rows for *worker_id* and commit before anything is sent.

    Due: queued or retry rows whose ``not_before`` has come, and ``sending``
    rows whose lease ran out (their worker died mid-send; they become
    resends). Only rows on *channels* are taken, so a worker never claims what
    it has no channel for (a CSM task with no CSM webhook configured waits).
    """
    if limit < 1:
        raise DeliveryError(f"claim limit must be at least 1 (got {limit})")
    due = or_(
        and_(
            outbox.c.status.in_([OutboxStatus.QUEUED.value, OutboxStatus.RETRY.value]),
            outbox.c.not_before <= now,
        ),
        and_(outbox.c.status == OutboxStatus.SENDING.value, outbox.c.lease_until < now),
    )
    query = select(outbox).where(due)
    if channels is not None:
        query = query.where(outbox.c.channel.in_(sorted(channels)))
    query = (
        query.order_by(outbox.c.not_before, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    until = now + lease
    with begin_write(engine) as connection:
        rows = [_delivery(row) for row in connection.execute(query)]
        claimed: list[Claimed] = []
        for row in rows:
            resend = row.status is OutboxStatus.SENDING
            connection.execute(
                update(outbox)
                .where(outbox.c.id == row.id)
                .values(
                    status=OutboxStatus.SENDING.value,
                    lease_owner=worker_id,
                    lease_until=until,
                    attempts=row.attempts + 1,
                    resends=row.resends + (1 if resend else 0),
                )
            )
            if resend:
                connection.execute(
                    insert(delivery_attempts).values(
                        outbox_id=row.id,
                        attempt=row.attempts,
                        worker=row.lease_owner or "unknown",
                        started_at=now,
                        finished_at=now,
                        outcome=AttemptOutcome.RESEND.value,
                        detail=(
                            f"lease of {row.lease_owner} ran out at "
                            f"{row.lease_until:%Y-%m-%d %H:%M:%S} UTC mid-send; {worker_id} "
                            "sends again with the same idempotency key"
                        ),
                    )
                )
            claimed.append(
                Claimed(
                    dataclasses.replace(
                        row,
                        status=OutboxStatus.SENDING,
                        lease_owner=worker_id,
                        lease_until=until,
                        attempts=row.attempts + 1,
                        resends=row.resends + (1 if resend else 0),
                    ),
                    resend,
                )
            )
    return claimed


def _owned(delivery: Delivery, worker_id: str) -> Any:
    """The fence: this row is still ours, in the attempt we claimed."""
    return and_(
        outbox.c.id == delivery.id,
        outbox.c.status == OutboxStatus.SENDING.value,
        outbox.c.lease_owner == worker_id,
        outbox.c.attempts == delivery.attempts,
    )


def _record(
    connection: Connection,
    delivery: Delivery,
    worker_id: str,
    started_at: dt.datetime,
    now: dt.datetime,
    outcome: AttemptOutcome,
    detail: str | None,
) -> None:
    connection.execute(
        insert(delivery_attempts).values(
            outbox_id=delivery.id,
            attempt=delivery.attempts,
            worker=worker_id,
            started_at=started_at,
            finished_at=now,
            outcome=outcome.value,
            detail=detail,
        )
    )


def mark_sent(
    connection: Connection,
    delivery: Delivery,
    worker_id: str,
    *,
    started_at: dt.datetime,
    now: dt.datetime,
    detail: str | None = None,
) -> bool:
    """Record a successful send inside the caller's transaction; False if the lease was lost.

    A send to a person also puts its ``Message Sent`` event in the inbox
    (:mod:`tenure.deliver._sent`).
    """
    done = connection.execute(
        update(outbox)
        .where(_owned(delivery, worker_id))
        .values(
            status=OutboxStatus.SENT.value,
            sent_at=now,
            lease_owner=None,
            lease_until=None,
            last_error=None,
        )
    )
    if done.rowcount != 1:
        return False
    _record(connection, delivery, worker_id, started_at, now, AttemptOutcome.SENT, detail)
    sent = sent_event(delivery, now)
    if sent is not None:  # into the inbox with the status: the lake learns of it once
        write_events(connection, [(EVENT_SOURCE, [sent])], now)
    return True


def mark_failed(
    connection: Connection,
    delivery: Delivery,
    worker_id: str,
    *,
    started_at: dt.datetime,
    now: dt.datetime,
    error: str,
    permanent: bool,
    policy: RetryPolicy,
    rng: random.Random,
    retry_after: float | None = None,
) -> OutboxStatus | None:
    """Schedule a retry, or declare the delivery dead; None if the lease was lost.

    Dead when the error is permanent or this was attempt ``max_attempts``;
    otherwise the next attempt waits :meth:`RetryPolicy.delay` (at least
    *retry_after* when the receiver asked for that).
    """
    if permanent or delivery.attempts >= policy.max_attempts:
        status, not_before = OutboxStatus.DEAD, delivery.not_before
        why = "permanent error" if permanent else f"gave up after {delivery.attempts} attempts"
        detail = f"{error} ({why})"
    else:
        delay = policy.delay(delivery.attempts, rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
        status, not_before = OutboxStatus.RETRY, now + dt.timedelta(seconds=delay)
        detail = f"{error} (retry in {delay:.3f}s at {not_before:%Y-%m-%d %H:%M:%S} UTC)"
    done = connection.execute(
        update(outbox)
        .where(_owned(delivery, worker_id))
        .values(
            status=status.value,
            not_before=not_before,
            lease_owner=None,
            lease_until=None,
            last_error=error,
        )
    )
    if done.rowcount != 1:
        return None
    _record(connection, delivery, worker_id, started_at, now, AttemptOutcome.ERROR, detail)
    return status


def mark_cancelled(
    connection: Connection,
    delivery: Delivery,
    worker_id: str,
    *,
    now: dt.datetime,
    reason: str,
) -> bool:
    """Cancel a claimed delivery (consent withdrawn since it was queued); False if not ours."""
    done = connection.execute(
        update(outbox)
        .where(_owned(delivery, worker_id))
        .values(
            status=OutboxStatus.CANCELLED.value,
            lease_owner=None,
            lease_until=None,
            last_error=f"cancelled: {reason}",
        )
    )
    if done.rowcount != 1:
        return False
    _record(connection, delivery, worker_id, now, now, AttemptOutcome.CANCELLED, reason)
    return True


def release(connection: Connection, delivery: Delivery, worker_id: str) -> bool:
    """Give back a claimed row that was never sent (stopping, or its lease ran out first).

    The claim is undone (attempts back down, not a resend), so the next worker
    sends it as an ordinary attempt.
    """
    done = connection.execute(
        update(outbox)
        .where(_owned(delivery, worker_id))
        .values(
            status=OutboxStatus.RETRY.value if delivery.attempts > 1 else OutboxStatus.QUEUED.value,
            attempts=delivery.attempts - 1,
            lease_owner=None,
            lease_until=None,
        )
    )
    return done.rowcount == 1


def get_delivery(connection: Connection, outbox_id: int) -> Delivery:
    row = connection.execute(select(outbox).where(outbox.c.id == outbox_id)).one_or_none()
    if row is None:
        raise NotFoundError(
            f"no delivery with id {outbox_id}",
            hint="`tenure deliveries list` shows the deliveries and their ids",
        )
    return _delivery(row)


def list_deliveries(
    connection: Connection, status: OutboxStatus | str | None = None, limit: int = 100
) -> list[Delivery]:
    """The newest deliveries first, optionally only those in *status*."""
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if status is not None:
        try:
            status = OutboxStatus(status)
        except ValueError:
            raise DeliveryError(
                f"status {status!r} is not one of {', '.join(s.value for s in OutboxStatus)}"
            ) from None
        query = query.where(outbox.c.status == status.value)
    return [_delivery(row) for row in connection.execute(query)]


def delivery_attempts_of(connection: Connection, outbox_id: int) -> list[Attempt]:
    rows = connection.execute(
        select(delivery_attempts)
        .where(delivery_attempts.c.outbox_id == outbox_id)
        .order_by(delivery_attempts.c.id)
    )
    return [
        Attempt(
            r.id, r.outbox_id, r.attempt, r.worker, r.started_at, r.finished_at, r.outcome, r.detail
        )
        for r in rows
    ]


def retry_dead(connection: Connection, outbox_id: int, now: dt.datetime) -> Delivery:
    """Queue a dead delivery again, inside the caller's transaction, with a fresh attempt budget.

    The earlier attempts stay in ``delivery_attempts``; the idempotency key is
    unchanged, so a receiver that did get an earlier attempt can recognise it.
    """
    found = get_delivery(connection, outbox_id)
    if found.status is not OutboxStatus.DEAD:
        raise DeliveryError(
            f"delivery {outbox_id} is {found.status.value}, not dead; only dead deliveries "
            "can be retried",
            hint="`tenure deliveries list --status dead` shows the ones that can",
        )
    connection.execute(
        update(outbox)
        .where(and_(outbox.c.id == outbox_id, outbox.c.status == OutboxStatus.DEAD.value))
        .values(
            status=OutboxStatus.QUEUED.value,
            attempts=0,
            not_before=now,
            lease_owner=None,
            lease_until=None,
            last_error=None,
        )
    )
    return get_delivery(connection, outbox_id)
