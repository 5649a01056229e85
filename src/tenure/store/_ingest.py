"""Ingest runs and the quarantine of records that could not be loaded."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Row, func, insert, select, update

from tenure.errors import NotFoundError
from tenure.store._tables import ingest_runs, quarantine

__all__ = [
    "IngestRun",
    "NewQuarantined",
    "QuarantineRecord",
    "QuarantineStatus",
    "add_quarantined",
    "finish_run",
    "get_quarantined",
    "latest_run",
    "list_quarantined",
    "quarantine_counts",
    "resolve_quarantined",
    "start_run",
]


class QuarantineStatus(enum.StrEnum):
    OPEN = "open"
    LOADED = "loaded"  # a retry loaded it
    REQUARANTINED = "requarantined"  # a retry failed again; the new record carries the reason
    DISCARDED = "discarded"


@dataclass(frozen=True, slots=True)
class IngestRun:
    id: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    inputs: list[str]
    loaded: int
    duplicates: int
    quarantined: int
    error: str | None


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    id: int
    run_id: str
    source: str
    source_file: str
    record_number: int
    raw: str
    reason_code: str
    reason: str
    created_at: dt.datetime
    status: QuarantineStatus


@dataclass(frozen=True, slots=True)
class NewQuarantined:
    """A record to quarantine, before it has an id."""

    source: str
    source_file: str
    record_number: int
    raw: str
    reason_code: str
    reason: str


def start_run(connection: Connection, run_id: str, at: dt.datetime, inputs: Sequence[str]) -> None:
    connection.execute(
        insert(ingest_runs).values(
            id=run_id,
            started_at=at,
            status="running",
            inputs=orjson.dumps(list(inputs)).decode(),
            loaded=0,
            duplicates=0,
            quarantined=0,
        )
    )


def finish_run(
    connection: Connection,
    run_id: str,
    at: dt.datetime,
    *,
    loaded: int,
    duplicates: int,
    quarantined: int,
    error: str | None = None,
) -> None:
    connection.execute(
        update(ingest_runs)
        .where(ingest_runs.c.id == run_id)
        .values(
            finished_at=at,
            status="failed" if error else "succeeded",
            loaded=loaded,
            duplicates=duplicates,
            quarantined=quarantined,
            error=error,
        )
    )


def _run(row: Row[Any]) -> IngestRun:
    return IngestRun(
        id=row.id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        status=row.status,
        inputs=orjson.loads(row.inputs),
        loaded=row.loaded,
        duplicates=row.duplicates,
        quarantined=row.quarantined,
        error=row.error,
    )


def latest_run(connection: Connection) -> IngestRun | None:
    row = connection.execute(
        select(ingest_runs).order_by(ingest_runs.c.seq.desc()).limit(1)
    ).first()
    return None if row is None else _run(row)


def _fingerprint(record: NewQuarantined) -> str:
    text = f"{record.source_file}\x1f{record.record_number}\x1f{record.raw}"
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def add_quarantined(
    connection: Connection, run_id: str, at: dt.datetime, records: Iterable[NewQuarantined]
) -> int:
    """Quarantine *records*, skipping any already open from an earlier load of the same file.

    Returns how many were newly quarantined.
    """
    rows = {}
    for r in records:
        fingerprint = _fingerprint(r)
        rows[fingerprint] = {
            "run_id": run_id,
            "source": r.source,
            "source_file": r.source_file,
            "record_number": r.record_number,
            "raw": r.raw,
            "fingerprint": fingerprint,
            "reason_code": r.reason_code,
            "reason": r.reason,
            "created_at": at,
            "status": QuarantineStatus.OPEN.value,
        }
    if not rows:
        return 0
    known: set[str] = set()
    keys = list(rows)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        known.update(
            connection.execute(
                select(quarantine.c.fingerprint).where(
                    quarantine.c.fingerprint.in_(chunk),
                    quarantine.c.status == QuarantineStatus.OPEN.value,
                )
            ).scalars()
        )
    fresh = [row for key, row in rows.items() if key not in known]
    if fresh:
        connection.execute(insert(quarantine), fresh)
    return len(fresh)


def _record(row: Row[Any]) -> QuarantineRecord:
    return QuarantineRecord(
        id=row.id,
        run_id=row.run_id,
        source=row.source,
        source_file=row.source_file,
        record_number=row.record_number,
        raw=row.raw,
        reason_code=row.reason_code,
        reason=row.reason,
        created_at=row.created_at,
        status=QuarantineStatus(row.status),
    )


def list_quarantined(
    connection: Connection,
    *,
    status: QuarantineStatus | None = QuarantineStatus.OPEN,
    reason_code: str | None = None,
    run_id: str | None = None,
    limit: int | None = 100,
) -> list[QuarantineRecord]:
    query = select(quarantine).order_by(quarantine.c.id)
    if status is not None:
        query = query.where(quarantine.c.status == status.value)
    if reason_code is not None:
        query = query.where(quarantine.c.reason_code == reason_code)
    if run_id is not None:
        query = query.where(quarantine.c.run_id == run_id)
    if limit is not None:
        query = query.limit(limit)
    return [_record(row) for row in connection.execute(query)]


def get_quarantined(connection: Connection, record_id: int) -> QuarantineRecord:
    row = connection.execute(select(quarantine).where(quarantine.c.id == record_id)).first()
    if row is None:
        raise NotFoundError(
            f"no quarantined record with id {record_id}",
            hint="`tenure quarantine list` shows the ids",
        )
    return _record(row)


def resolve_quarantined(
    connection: Connection,
    record_ids: Sequence[int],
    status: QuarantineStatus,
    at: dt.datetime,
    run_id: str | None,
) -> None:
    if record_ids:
        connection.execute(
            update(quarantine)
            .where(quarantine.c.id.in_(record_ids))
            .values(status=status.value, resolved_at=at, resolved_run_id=run_id)
        )


def quarantine_counts(connection: Connection) -> dict[str, int]:
    """Open quarantined records per reason code."""
    rows = connection.execute(
        select(quarantine.c.reason_code, func.count())
        .where(quarantine.c.status == QuarantineStatus.OPEN.value)
        .group_by(quarantine.c.reason_code)
    )
    return {code: int(n) for code, n in rows}
