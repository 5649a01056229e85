"""The inbox: where the HTTP API commits events before it acknowledges them, and its loader.

Writing: :class:`InboxWriter` commits through a group committer
(:mod:`tenure.store._group`), one thread. Requests hand it their events and
wait; it commits whatever has arrived meanwhile in one transaction, so a busy
server pays one synchronous commit for many requests, and no request is
answered before its events are durable.
A message id already in the inbox is a duplicate: it is counted, not stored
again.

Loading: :func:`load_inbox` moves waiting events to the lake through the
same validation, dedupe and quarantine as file ingest, then marks them
loaded. A crash between the lake write and the mark only means the next run
sees those events again, and the lake's own dedupe on message id drops them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, text, update

from tenure.collect._http import CollectedEvent
from tenure.collect._ingest import (
    SEGMENT_SOURCE,
    IngestReport,
    InputReport,
    _finish,
    _flush,
    _load_batch,
    _start_pending,
    new_run_id,
)
from tenure.collect._segment import load_lines
from tenure.project import Project
from tenure.store import add_quarantined, start_run
from tenure.store._group import GroupCommitter
from tenure.store._tables import UTCDateTime, inbox

__all__ = ["InboxStats", "InboxWriter", "Written", "inbox_stats", "load_inbox", "prune_inbox"]

#: The most requests one commit takes; more wait for the next one.
_GROUP = 256


@dataclass(frozen=True, slots=True)
class Written:
    accepted: int
    duplicates: int


# SQLite: one executemany straight to the driver. Through SQLAlchemy every row's
# parameters are processed one by one (the same received_at converted each time),
# which cost about as much as the insert itself.
_SQLITE_INSERT = (
    "INSERT INTO inbox (message_id, source, received_at, payload) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (message_id) DO NOTHING"
)


# PostgreSQL: the whole group in one statement and one round trip, arrays unnested
# server-side; RETURNING says which ids were new (a concurrent server's commit of
# the same id makes ours the duplicate, exactly as the unique index decides).
_PG_INSERT = text(
    """INSERT INTO inbox (message_id, source, received_at, payload)
    SELECT m, s, :at, p FROM unnest(CAST(:ids AS text[]), CAST(:sources AS text[]),
                                   CAST(:payloads AS text[])) AS u(m, s, p)
    ON CONFLICT (message_id) DO NOTHING
    RETURNING message_id"""
).bindparams(bindparam("at", type_=UTCDateTime()))


def _first_copies(
    groups: Sequence[tuple[str, Sequence[CollectedEvent]]],
) -> tuple[list[tuple[int, CollectedEvent]], list[int]]:
    """Each message id's first copy in the commit (with its group), and each group's size."""
    seen: set[str] = set()
    firsts = []
    for number, (_, events) in enumerate(groups):
        for event in events:
            if event.message_id not in seen:
                seen.add(event.message_id)
                firsts.append((number, event))
    return firsts, [len(events) for _, events in groups]


def write_events(
    connection: Connection, groups: Sequence[tuple[str, Sequence[CollectedEvent]]], at: dt.datetime
) -> list[Written]:
    """Insert each group's events (in the caller's transaction); what each group added.

    A message id already stored, or sent twice in this commit, is a duplicate
    (the first copy in the commit is the one that counts).
    """
    firsts, sizes = _first_copies(groups)
    if connection.dialect.name == "postgresql":
        new = set(
            connection.execute(
                _PG_INSERT,
                {
                    "at": at,
                    "ids": [e.message_id for _, e in firsts],
                    "sources": [groups[n][0] for n, _ in firsts],
                    "payloads": [e.payload.decode() for _, e in firsts],
                },
            ).scalars()
        )
    else:
        new = _insert_new_sqlite(connection, groups, firsts, at)
    accepted = [0] * len(groups)
    for number, event in firsts:
        if event.message_id in new:
            accepted[number] += 1
    return [Written(a, size - a) for a, size in zip(accepted, sizes, strict=True)]


def _insert_new_sqlite(
    connection: Connection,
    groups: Sequence[tuple[str, Sequence[CollectedEvent]]],
    firsts: list[tuple[int, CollectedEvent]],
    at: dt.datetime,
) -> set[str]:
    """Insert the ids not stored yet; which were new. (SQLite has one writer at a time:
    what a read inside this write transaction finds stored cannot change under it.)"""
    ids = [e.message_id for _, e in firsts]
    present: set[str] = set()
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        present.update(
            connection.execute(
                select(inbox.c.message_id).where(inbox.c.message_id.in_(chunk))
            ).scalars()
        )
    received_at = _sqlite_time(connection, at)
    rows = [
        (event.message_id, groups[number][0], received_at, event.payload.decode())
        for number, event in firsts
        if event.message_id not in present
    ]
    if rows:
        connection.exec_driver_sql(_SQLITE_INSERT, rows)
    return {row[0] for row in rows}


def _sqlite_time(connection: Connection, at: dt.datetime) -> Any:
    """*at* as the inbox's ``received_at`` column stores it on SQLite (its own bind
    processing, done once for a commit's rows)."""
    process = inbox.c.received_at.type.bind_processor(connection.dialect)
    return process(at) if process is not None else at


class InboxWriter:
    """Commits events for concurrent requests, many requests per transaction."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime]) -> None:
        def commit(
            connection: Connection, groups: Sequence[tuple[str, Sequence[CollectedEvent]]]
        ) -> list[Written]:
            return write_events(connection, groups, clock())

        self._committer: GroupCommitter[tuple[str, Sequence[CollectedEvent]], Written] = (
            GroupCommitter(engine, commit, name="tenure-inbox", most=_GROUP)
        )

    def write_sync(self, source: str, events: Sequence[CollectedEvent]) -> Written:
        """Commit *events* (from a worker thread or a test); returns once they are durable."""
        return self._committer.submit_sync((source, events))

    async def write(self, source: str, events: Sequence[CollectedEvent]) -> Written:
        """Commit *events*; returns (without blocking the loop) once they are durable."""
        return await self._committer.submit((source, events))

    def close(self) -> None:
        self._committer.close()


@dataclass(frozen=True, slots=True)
class InboxStats:
    waiting: int
    oldest_waiting: dt.datetime | None
    loaded: int


def inbox_stats(connection: Connection) -> InboxStats:
    waiting = inbox.c.loaded_at.is_(None)
    row = connection.execute(
        select(func.count(), func.min(inbox.c.received_at)).where(waiting)
    ).one()
    loaded = connection.execute(select(func.count()).where(~waiting)).scalar_one()
    return InboxStats(int(row[0]), row[1], int(loaded))


def load_inbox(project: Project, *, batch: int | None = None) -> IngestReport | None:
    """Move waiting inbox events to the lake, *batch* at a time; None when none wait."""
    size = batch or project.config.serve.loader_batch
    started = project.clock()
    run_id: str | None = None
    reports: list[InputReport] = []
    reasons: Counter[str] = Counter()
    batch_no = 0
    try:
        while True:
            with project.store.connect() as connection:
                rows = connection.execute(
                    select(inbox.c.id, inbox.c.source, inbox.c.payload)
                    .where(inbox.c.loaded_at.is_(None))
                    .order_by(inbox.c.id)
                    .limit(size)
                ).all()
            if not rows:
                break
            if run_id is None:
                run_id = new_run_id(started)
                with project.store.begin() as connection:
                    start_run(connection, run_id, started, ["inbox"])
                project.index.recover()
                _start_pending(project)
            by_source: dict[str, list[tuple[int, str]]] = {}
            for row in rows:
                by_source.setdefault(row.source, []).append((row.id, row.payload))
            for source, items in sorted(by_source.items()):
                load_lines(project.index.con, [i for i, _ in items], [p.encode() for _, p in items])
                now = project.clock()
                outcome = _load_batch(
                    project,
                    label=f"inbox:{source}",
                    source=source,
                    reader=SEGMENT_SOURCE,
                    run_id=run_id,
                    batch_no=batch_no,
                    now=now,
                )
                batch_no += 1
                reasons.update(r.reason_code for r in outcome.rejected)
                reports.append(
                    InputReport(
                        f"inbox:{source}",
                        "inbox",
                        outcome.loaded,
                        outcome.duplicates,
                        len(outcome.rejected),
                        outcome.suppressed.count,
                    )
                )
                _stage_done(project, run_id, outcome.rejected, [i for i, _ in items], batch_no)
                batch_no += 1
            if len(rows) < size:
                break
    except BaseException as error:
        if run_id is not None:
            _finish(project, run_id, reports, f"{type(error).__name__}: {error}")
        raise
    if run_id is None:
        return None
    _finish(project, run_id, reports, None)
    return IngestReport(run_id, started, project.clock(), tuple(reports), dict(reasons))


def _stage_done(
    project: Project, run_id: str, rejected: Sequence[object], ids: list[int], batch_no: int
) -> None:
    """Flush to the lake, then quarantine the rejects and mark the rows loaded, together."""
    now = project.clock()
    _flush(project, run_id=run_id, batch_no=batch_no, now=now)
    with project.store.begin() as connection:
        add_quarantined(connection, run_id, now, rejected)  # type: ignore[arg-type]
        for start in range(0, len(ids), 5000):
            connection.execute(
                update(inbox).where(inbox.c.id.in_(ids[start : start + 5000])).values(loaded_at=now)
            )


def prune_inbox(connection: Connection, *, before: dt.datetime) -> int:
    """Delete events loaded before *before* (past the dedupe window); how many went."""
    result = connection.execute(
        delete(inbox).where(inbox.c.loaded_at.is_not(None), inbox.c.loaded_at < before)
    )
    return int(result.rowcount or 0)
