"""The warehouse: an Ibis connection over the lake plus the warehouse's own tables.

Transforms are Ibis expressions so they run unchanged on DuckDB (the embedded
default) and on Spark. Engines load lazily; Spark only when asked for.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tenure.config import WarehouseBackend, WarehouseSettings
from tenure.errors import TenureError
from tenure.warehouse._index import LakeIndex
from tenure.warehouse._lake import Lake, StagedFile
from tenure.warehouse._schema import EVENT_SCHEMA

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

__all__ = ["Warehouse", "connect_backend"]


def connect_backend(settings: WarehouseSettings, project_dir: Path) -> BaseBackend:
    """Open the configured engine through Ibis."""
    import ibis

    if settings.backend is WarehouseBackend.DUCKDB:
        path = settings.path if settings.path.is_absolute() else project_dir / settings.path
        path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {}
        if settings.threads is not None:
            config["threads"] = settings.threads
        config["memory_limit"] = settings.duckdb_memory_limit()
        backend = ibis.duckdb.connect(str(path), **config)
        # dates of timestamps are UTC dates, whatever the machine's zone
        backend.raw_sql("SET TimeZone = 'UTC'")
        # DuckDB draws a progress bar on stdout for queries over 2 s: it would land in
        # the CLI's tables and --json output, and in the logs of batch jobs
        backend.raw_sql("SET enable_progress_bar = false")
        return backend
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise TenureError(
            "warehouse.backend is pyspark but PySpark is not installed",
            hint="pip install 'tenure[spark]', or set warehouse.backend: duckdb",
        ) from None
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    return ibis.pyspark.connect(session)


class Warehouse:
    """The lake, the engine that reads it, and the warehouse's own tables."""

    def __init__(self, backend: BaseBackend, lake: Lake, index: LakeIndex) -> None:
        self.backend = backend
        self.lake = lake
        self.index = index

    def has_table(self, name: str) -> bool:
        return name in self.backend.list_tables()

    def table(self, name: str) -> ir.Table:
        return self.backend.table(name)

    def replace_table(self, name: str, obj: ir.Table | pa.Table) -> None:
        self.backend.create_table(name, obj, overwrite=True)

    def events(self) -> ir.Table:
        """All events in the lake, each with its ``event_date`` (the UTC date)."""
        import ibis

        if not self.lake.has_events():
            empty = ibis.memtable(EVENT_SCHEMA.empty_table())
            return empty.mutate(event_date=empty.timestamp.date())
        # the month partition is only the files' folder: event_date is in the files
        return self.backend.read_parquet(self.lake.events_glob(), hive_partitioning=False)

    def snapshot(self, entity: str) -> ir.Table | None:
        if entity not in self.lake.snapshot_entities():
            return None
        return self.backend.read_parquet(self.lake.snapshot_glob(entity), hive_partitioning=True)

    def publish_events(self, files: list[StagedFile], *, run_id: str, at: dt.datetime) -> None:
        """Make event files staged with :meth:`Lake.stage_events` part of the lake."""
        self.index.register_staged_events(files, run_id=run_id, at=at)

    def event_count(self) -> int:
        return self.index.event_count()

    def table_counts(self) -> dict[str, int]:
        counts = {}
        for name in sorted(self.backend.list_tables()):
            counts[name] = int(self.backend.execute(self.backend.table(name).count()))
        return counts

    def close(self) -> None:
        disconnect = getattr(self.backend, "disconnect", None)
        if disconnect is not None:
            disconnect()
