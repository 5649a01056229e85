"""The Parquet lake: events partitioned by event month, entity snapshots by snapshot date.

Layout under the lake root::

    events/event_month=YYYY-MM/<run>-<batch>-<n>.parquet
    snapshots/<entity>/snapshot_date=YYYY-MM-DD/<run>-<n>.parquet
    _staging/                      files being written; never read

An event file holds the events of one month (UTC) and each row carries its
``event_date``, the UTC date of its timestamp, as a column: engines prune on it
by row-group statistics. Months rather than days keep the file count low, which
every full scan pays for: a two-year demo lake had 2,219 per-day files and a
grouped scan of its 1.1M events took 0.16 s, against 0.006 s for the same rows
in one file; the demo's steps after ingest ran 30 % faster on the one file.

A file becomes part of the lake when it is moved out of ``_staging`` and
registered in the warehouse's ``lake_files`` table in the same transaction as
its message ids (see :mod:`tenure.warehouse._warehouse`). A file in the lake
but not registered is the leftover of a crash and is removed before the next
write, so a re-run loads its events exactly once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tenure.warehouse._schema import EVENT_SCHEMA

__all__ = ["EVENT_PARTITION", "Lake", "StagedFile"]

#: The partition key of the lake's event files (``event_month=YYYY-MM``).
EVENT_PARTITION = "event_month"

_PARQUET_OPTIONS = {"compression": "zstd", "row_group_size": 256 * 1024}


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A file written to staging, where it will go, and the message ids it holds."""

    staged: Path
    final: Path
    message_ids: pa.ChunkedArray | None


class Lake:
    """Reads and writes the lake's files. Knows paths, not engines."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "snapshots"

    @property
    def staging_dir(self) -> Path:
        return self.root / "_staging"

    def events_glob(self) -> str:
        return str(self.events_dir / f"{EVENT_PARTITION}=*" / "*.parquet")

    def snapshot_glob(self, entity: str) -> str:
        return str(self.snapshots_dir / entity / "snapshot_date=*" / "*.parquet")

    def has_events(self) -> bool:
        return any(self.events_dir.glob(f"{EVENT_PARTITION}=*/*.parquet"))

    def snapshot_entities(self) -> list[str]:
        if not self.snapshots_dir.is_dir():
            return []
        return sorted(p.name for p in self.snapshots_dir.iterdir() if any(p.rglob("*.parquet")))

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def stage_events(self, table: pa.Table, prefix: str) -> list[StagedFile]:
        """Write *table* (EVENT_SCHEMA) to staging, one file per event month, in time order.

        Nothing is visible in the lake until the files are published.
        """
        if table.num_rows == 0:
            return []
        table = table.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA)
        table = table.append_column("event_date", pc.cast(table["timestamp"], pa.date32()))
        table = table.sort_by([("timestamp", "ascending")])
        dates = table["event_date"].combine_chunks()
        months = pc.add(pc.multiply(pc.year(dates), 100), pc.month(dates))
        staging = self.staging_dir / f"{prefix}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True, exist_ok=True)
        staged_files: list[StagedFile] = []
        start = 0
        for index, end in enumerate(_run_ends(months, len(pc.unique(months)))):
            part = table.slice(start, end - start)
            month = f"{dates[start].as_py():%Y-%m}"
            start = end
            name = f"{prefix}-{index:05d}.parquet"
            staged = staging / name
            pq.write_table(part, staged, **_PARQUET_OPTIONS)
            final = self.events_dir / f"{EVENT_PARTITION}={month}" / name
            staged_files.append(StagedFile(staged, final, part.column("message_id")))
        return staged_files

    def stage_snapshot(
        self, entity: str, table: pa.Table, snapshot_date: dt.date, prefix: str
    ) -> list[StagedFile]:
        if table.num_rows == 0:
            return []
        staging = self.staging_dir / f"{prefix}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}.parquet"
        staged = staging / name
        pq.write_table(table, staged, **_PARQUET_OPTIONS)
        final = self.snapshots_dir / entity / f"snapshot_date={snapshot_date.isoformat()}" / name
        return [StagedFile(staged, final, None)]

    @staticmethod
    def publish(files: list[StagedFile]) -> None:
        """Move staged files into place (an atomic rename each) and sync their directories."""
        for file in files:
            file.final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file.staged, file.final)
            _fsync_dir(file.final.parent)
        for parent in {file.staged.parent for file in files}:
            shutil.rmtree(parent, ignore_errors=True)
            with contextlib.suppress(OSError):  # only when no other batch is staging
                parent.parent.rmdir()

    def clear_staging(self) -> None:
        shutil.rmtree(self.staging_dir, ignore_errors=True)


def _run_ends(sorted_values: pa.Array, count: int) -> list[int]:
    """End offsets of each run of equal values in a sorted array."""
    if count == 1:
        return [len(sorted_values)]
    changes = pc.not_equal(sorted_values.slice(1), sorted_values.slice(0, len(sorted_values) - 1))
    idx = pc.indices_nonzero(changes).to_pylist()
    return [i + 1 for i in idx] + [len(sorted_values)]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
