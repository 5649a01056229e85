"""The lake's index: which message ids and which files the lake holds.

It lives beside the lake in its own DuckDB file (``_index.duckdb``), not in the
warehouse, because loading is an embedded single-writer job whatever engine
later reads the lake: the CLI's ingest and the server's loader use it, and
neither needs the warehouse. Its connection is also where loading does its
vectorized work, so a batch is parsed, checked, deduplicated and written
without leaving DuckDB.

A file is part of the lake once it is registered here. Registration of a
batch's files and its message ids is one transaction; files that reached the
lake without being registered (a crash between the rename and the commit) are
set aside by :meth:`LakeIndex.recover` before the next load, so every event is
loaded exactly once.

Files are rewritten (an erasure removing a person's rows) by the same rule,
all or nothing: :meth:`LakeIndex.replace_files` moves the new files in, then
in one transaction registers them, unregisters the old ones and lists those as
superseded, then deletes them. A crash before that commit leaves the old set
registered (``recover`` sets the new files aside); after it, the new set, and
``recover`` deletes the superseded files — deleted, not set aside, because
what they hold was meant to be gone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from tenure.warehouse._lake import EVENT_PARTITION, Lake, StagedFile

__all__ = ["INDEX_FILENAME", "LakeIndex", "Replacement", "SwapPhase"]

INDEX_FILENAME = "_index.duckdb"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_ids (message_id VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS lake_files (
    path VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,          -- events | snapshot:<entity>
    content_hash VARCHAR,
    run_id VARCHAR NOT NULL,
    rows BIGINT NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL
);
-- files replaced by a rewrite, still on disk until deleted
CREATE TABLE IF NOT EXISTS lake_superseded (
    path VARCHAR PRIMARY KEY,
    superseded_at TIMESTAMPTZ NOT NULL
);
"""


class SwapPhase(enum.StrEnum):
    """Points of :meth:`LakeIndex.replace_files`, reported to its *checkpoint*."""

    PUBLISHED = "published"  # new files moved into the lake, not registered yet
    REGISTERED = "registered"  # the swap committed; the old files not deleted yet


@dataclass(frozen=True, slots=True)
class Replacement:
    """A staged file that takes the place of registered ones, and how to register it."""

    file: StagedFile
    kind: str  # events | snapshot:<entity>
    rows: int
    content_hash: str | None = None


class LakeIndex:
    """Message ids and registered files of a lake, plus the connection loading runs in."""

    def __init__(
        self, lake: Lake, *, threads: int | None = None, memory_limit: str | None = None
    ) -> None:
        self.lake = lake
        lake.root.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(lake.root / INDEX_FILENAME))
        # naive timestamps in inputs are UTC; spills go next to the lake, not to /tmp
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")  # not on the CLI's stdout
        # a backfill batch spans many months: keep one open file per month rather
        # than DuckDB's default of 100, which splits months into several small files
        self.con.execute("SET partitioned_write_max_open_files = 4096")
        self.con.execute("SET partitioned_write_flush_threshold = 1000000")
        self.con.execute(f"SET temp_directory = '{_sql_path(lake.root / '_spill')}'")
        if threads is not None:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit is not None:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.con.execute(_SCHEMA)

    def close(self) -> None:
        self.con.close()

    # ------------------------------------------------------------- queries
    def event_count(self) -> int:
        row = self.con.execute("SELECT count(*) FROM event_ids").fetchone()
        return int(row[0]) if row else 0

    def registered_files(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT path FROM lake_files").fetchall()}

    def snapshot_known(self, kind: str, content_hash: str) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM lake_files WHERE kind = ? AND content_hash = ?",
            [kind, content_hash],
        ).fetchone()
        return bool(row and row[0])

    # ------------------------------------------------------------- recovery
    def recover(self) -> list[str]:
        """Clear staging and set aside lake files that are not registered.

        Such a file is the leftover of a crash between its rename and its
        registration (its events will be loaded again), or something put into
        the lake by hand: either way the lake must not count it, so it is
        moved to ``_unregistered/`` rather than deleted. Returns what was moved.
        """
        self.lake.clear_staging()
        self._delete_superseded()
        registered = self.registered_files()
        moved = []
        for path in sorted(self.lake.root.glob("*/**/*.parquet")):
            rel = self.lake.relative(path)
            if not rel.startswith(("events/", "snapshots/")) or rel in registered:
                continue
            target = self.lake.root / "_unregistered" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            moved.append(rel)
        return moved

    def _delete_superseded(self) -> None:
        paths = [r[0] for r in self.con.execute("SELECT path FROM lake_superseded").fetchall()]
        for rel in paths:
            (self.lake.root / rel).unlink(missing_ok=True)
        for parent in {(self.lake.root / rel).parent for rel in paths}:
            if parent.is_dir():
                _fsync_dir(parent)
        if paths:
            self.con.execute("DELETE FROM lake_superseded")

    def file_kinds(self) -> dict[str, str]:
        """Registered files (relative paths) and their kinds."""
        return dict(self.con.execute("SELECT path, kind FROM lake_files").fetchall())

    # ------------------------------------------------------------ rewriting
    def replace_files(
        self,
        old: Sequence[str],
        new: Sequence[Replacement],
        *,
        run_id: str,
        at: dt.datetime,
        checkpoint: Callable[[SwapPhase], None] | None = None,
    ) -> None:
        """Put the staged files *new* in place of the registered files *old* (relative
        paths), all or nothing; message ids stay registered as they are."""
        if not old and not new:
            return
        self.lake.publish([r.file for r in new])
        if checkpoint is not None:
            checkpoint(SwapPhase.PUBLISHED)
        self.con.begin()
        try:
            if old:
                listed = [[rel] for rel in old]
                self.con.executemany("DELETE FROM lake_files WHERE path = ?", listed)
                self.con.executemany(
                    "INSERT OR REPLACE INTO lake_superseded VALUES (?, ?)",
                    [[rel, at] for rel in old],
                )
            self.con.executemany(
                "INSERT INTO lake_files VALUES (?, ?, ?, ?, ?, ?)",
                [
                    [self.lake.relative(r.file.final), r.kind, r.content_hash, run_id, r.rows, at]
                    for r in new
                ],
            )
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
        if checkpoint is not None:
            checkpoint(SwapPhase.REGISTERED)
        self._delete_superseded()

    # -------------------------------------------------------------- writing
    def write_events(
        self, query: str, prefix: str, *, ids: str, run_id: str, at: dt.datetime
    ) -> int:
        """Write the rows of *query* (the lake's event columns) to the lake and register them.

        DuckDB writes one file per event month into staging, each row with its
        ``event_date``; the files are then renamed into their partitions and
        registered, with the message ids that the query *ids* gives, in one
        transaction.
        """
        staging = self.lake.staging_dir / prefix
        self.lake.staging_dir.mkdir(parents=True, exist_ok=True)
        self.con.execute(
            f"""COPY (SELECT *, CAST("timestamp" AS DATE) AS event_date,
                        strftime("timestamp", '%Y-%m') AS {EVENT_PARTITION} FROM ({query}))
            TO '{_sql_path(staging)}' (FORMAT parquet, COMPRESSION zstd,
                PARTITION_BY ({EVENT_PARTITION}), FILENAME_PATTERN '{prefix}-{{i}}',
                ROW_GROUP_SIZE 262144, OVERWRITE_OR_IGNORE true)"""
        )
        files = []
        for path in sorted(staging.rglob("*.parquet")):
            final = self.lake.events_dir / path.relative_to(staging)
            files.append(StagedFile(path, final, None))
        if not files:
            return 0
        rows = {f.final: _parquet_rows(f.staged) for f in files}
        self.lake.publish(files)
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # only when no other batch is staging
            self.lake.staging_dir.rmdir()
        self._register(files, rows, kind="events", run_id=run_id, at=at, ids_query=ids)
        return sum(rows.values())

    def register_staged_events(
        self, files: Sequence[StagedFile], *, run_id: str, at: dt.datetime
    ) -> None:
        """Publish files staged by :meth:`Lake.stage_events` (Arrow writers) and register them."""
        if not files:
            return
        self.lake.publish(list(files))
        ids = pa.concat_arrays(
            [chunk for f in files if f.message_ids is not None for chunk in f.message_ids.chunks]
        )
        rows = {f.final: len(f.message_ids or []) for f in files}
        self.con.register("_staged_ids", pa.table({"message_id": ids}))
        try:
            self._register(
                files,
                rows,
                kind="events",
                run_id=run_id,
                at=at,
                ids_query="SELECT message_id FROM _staged_ids",
            )
        finally:
            self.con.unregister("_staged_ids")

    def register_snapshot(
        self,
        files: Sequence[StagedFile],
        *,
        kind: str,
        content_hash: str,
        run_id: str,
        rows: int,
        at: dt.datetime,
    ) -> None:
        self.lake.publish(list(files))
        self._register(
            files,
            {f.final: rows for f in files},
            kind=kind,
            run_id=run_id,
            at=at,
            content_hash=content_hash,
        )

    def _register(
        self,
        files: Sequence[StagedFile],
        rows: dict[Path, int],
        *,
        kind: str,
        run_id: str,
        at: dt.datetime,
        ids_query: str | None = None,
        content_hash: str | None = None,
    ) -> None:
        self.con.begin()
        try:
            if ids_query is not None:
                self.con.execute(f"INSERT INTO event_ids SELECT message_id FROM ({ids_query})")
            self.con.executemany(
                "INSERT INTO lake_files VALUES (?, ?, ?, ?, ?, ?)",
                [
                    [self.lake.relative(f.final), kind, content_hash, run_id, rows[f.final], at]
                    for f in files
                ],
            )
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
