"""Erasure requests and the suppression list, as the operational store keeps them.

:func:`tenure.govern.erasure.erase` records a request; the batch step
(:mod:`tenure.govern._lake_erasure`) finds the pending ones, rewrites the lake
and the warehouse, and marks them done. Ingest reads the suppression list.

Identifiers are kept in clear only as long as they are needed: a pending
request lists the person's typed identifiers, because the batch step must
find their events by value; once it is done they are dropped, and what stays
is a keyed hash (:class:`ErasureKey`) of each — enough to recognize the
person's identifiers on new events, not enough to read them back or to check
a guessed address without the key, which lives outside the store.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Row, insert, select, update

from tenure.errors import NotFoundError
from tenure.store._tables import erasure_requests, erasure_suppressions

__all__ = [
    "ErasureKey",
    "ErasureRequest",
    "LakeStatus",
    "add_erasure_request",
    "add_suppressions",
    "finish_erasure_request",
    "get_erasure_request",
    "list_erasure_requests",
    "new_erasure_request_id",
    "suppression_hashes",
]


class LakeStatus(enum.StrEnum):
    PENDING = "pending"  # the lake and the warehouse still hold the person
    DONE = "done"  # the batch step rewrote them


class ErasureKey:
    """Keyed hashes of typed identifiers: SHA-256 over the key, a separator and the identifier.

    DuckDB computes the same hash with ``sha256(key || chr(31) || identifier)``,
    so ingest compares a batch's identifiers with the list inside the engine.
    The key comes first: without it a hash cannot be recomputed from a guess.
    """

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("an erasure key is required")
        self.text = secret.decode()

    def hash(self, typed: str) -> str:
        return hashlib.sha256(f"{self.text}\x1f{typed}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    id: str
    requested_at: dt.datetime
    requested_by: str
    identifier_hash: str
    #: The person's typed identifiers while the lake part is pending; empty once done.
    identifiers: tuple[str, ...]
    lake_status: LakeStatus
    lake_done_at: dt.datetime | None
    #: What the batch step removed, as counts (no personal data).
    result: dict[str, int] = field(default_factory=dict)


def new_erasure_request_id() -> str:
    return f"er_{uuid.uuid4().hex[:16]}"


def add_erasure_request(
    connection: Connection,
    *,
    request_id: str,
    at: dt.datetime,
    actor: str,
    identifier_hash: str,
    identifiers: Iterable[str],
) -> None:
    connection.execute(
        insert(erasure_requests).values(
            id=request_id,
            requested_at=at,
            requested_by=actor,
            identifier_hash=identifier_hash,
            identifiers=orjson.dumps(sorted(set(identifiers))).decode(),
            lake_status=LakeStatus.PENDING.value,
        )
    )


def add_suppressions(
    connection: Connection, request_id: str, hashes: Iterable[str], at: dt.datetime
) -> int:
    """Add *hashes* to the suppression list (those already on it stay as they are)."""
    wanted = sorted(set(hashes))
    known: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        known.update(
            connection.execute(
                select(erasure_suppressions.c.hash).where(erasure_suppressions.c.hash.in_(chunk))
            ).scalars()
        )
    fresh = [
        {"hash": h, "request_id": request_id, "added_at": at} for h in wanted if h not in known
    ]
    if fresh:
        connection.execute(insert(erasure_suppressions), fresh)
    return len(fresh)


def suppression_hashes(connection: Connection) -> list[str]:
    return list(connection.execute(select(erasure_suppressions.c.hash)).scalars())


def _request(row: Row[Any]) -> ErasureRequest:
    return ErasureRequest(
        id=row.id,
        requested_at=row.requested_at,
        requested_by=row.requested_by,
        identifier_hash=row.identifier_hash,
        identifiers=tuple(orjson.loads(row.identifiers)) if row.identifiers else (),
        lake_status=LakeStatus(row.lake_status),
        lake_done_at=row.lake_done_at,
        result=orjson.loads(row.result) if row.result else {},
    )


def list_erasure_requests(
    connection: Connection, *, status: LakeStatus | None = None, limit: int | None = None
) -> list[ErasureRequest]:
    """Requests, oldest first (the order the batch step applies them in)."""
    query = select(erasure_requests).order_by(
        erasure_requests.c.requested_at, erasure_requests.c.id
    )
    if status is not None:
        query = query.where(erasure_requests.c.lake_status == status.value)
    if limit is not None:
        query = query.limit(limit)
    return [_request(row) for row in connection.execute(query)]


def get_erasure_request(connection: Connection, request_id: str) -> ErasureRequest:
    row = connection.execute(
        select(erasure_requests).where(erasure_requests.c.id == request_id)
    ).first()
    if row is None:
        raise NotFoundError(
            f"no erasure request with id {request_id!r}",
            hint="`tenure erasures list` shows the ids",
        )
    return _request(row)


def finish_erasure_request(
    connection: Connection, request_id: str, *, at: dt.datetime, result: dict[str, int]
) -> bool:
    """Mark a pending request done and drop its identifiers; False if it was not pending."""
    done = connection.execute(
        update(erasure_requests)
        .where(
            erasure_requests.c.id == request_id,
            erasure_requests.c.lake_status == LakeStatus.PENDING.value,
        )
        .values(
            lake_status=LakeStatus.DONE.value,
            lake_done_at=at,
            identifiers=None,
            result=orjson.dumps(dict(sorted(result.items()))).decode(),
        )
    )
    return bool(done.rowcount)
