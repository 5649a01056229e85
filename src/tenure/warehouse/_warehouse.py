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
from tenure.warehouse._lake import Lake, StagedFile
from tenure.warehouse._schema import EVENT_SCHEMA

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

__all__ = ["Warehouse", "connect_backend"]

_EVENT_IDS = "event_ids"
_LAKE_FILES = "lake_files"

_EVENT_IDS_SCHEMA = pa.schema([("message_id", pa.string()), ("file", pa.string())])
_LAKE_FILES_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("kind", pa.string()),  # snapshot:<entity>
        ("content_hash", pa.string()),
        ("run_id", pa.string()),
        ("rows", pa.int64()),
        ("registered_at", pa.timestamp("us", tz="UTC")),
    ]
)


def connect_backend(settings: WarehouseSettings, project_dir: Path) -> BaseBackend:
    """Open the configured engine through Ibis."""
    import ibis

    if settings.backend is WarehouseBackend.DUCKDB:
        path = settings.path if settings.path.is_absolute() else project_dir / settings.path
        path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {}
        if settings.threads is not None:
            config["threads"] = settings.threads
        if settings.memory_limit is not None:
            config["memory_limit"] = settings.memory_limit
        return ibis.duckdb.connect(str(path), **config)
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
    """The lake and the engine that reads it, plus bookkeeping of what is loaded."""

    def __init__(self, backend: BaseBackend, lake: Lake) -> None:
        self.backend = backend
        self.lake = lake
        self._ensure_tables()

    # ----------------------------------------------------------------- tables
    def _ensure_tables(self) -> None:
        existing = set(self.backend.list_tables())
        if _EVENT_IDS not in existing:
            self.backend.create_table(_EVENT_IDS, schema=_ibis_schema(_EVENT_IDS_SCHEMA))
        if _LAKE_FILES not in existing:
            self.backend.create_table(_LAKE_FILES, schema=_ibis_schema(_LAKE_FILES_SCHEMA))

    def has_table(self, name: str) -> bool:
        return name in self.backend.list_tables()

    def table(self, name: str) -> ir.Table:
        return self.backend.table(name)

    def replace_table(self, name: str, obj: ir.Table | pa.Table) -> None:
        self.backend.create_table(name, obj, overwrite=True)

    def events(self) -> ir.Table:
        """All events in the lake (with their ``event_date`` partition column)."""
        import ibis

        if not self.lake.has_events():
            empty = ibis.memtable(EVENT_SCHEMA.empty_table())
            return empty.mutate(event_date=empty.timestamp.date())
        return self.backend.read_parquet(self.lake.events_glob(), hive_partitioning=True)

    def snapshot(self, entity: str) -> ir.Table | None:
        if entity not in self.lake.snapshot_entities():
            return None
        return self.backend.read_parquet(self.lake.snapshot_glob(entity), hive_partitioning=True)

    # ------------------------------------------------------------ event loads
    def unseen(self, ids: pa.Table) -> pa.Table:
        """Rows of *ids* (a ``message_id`` column plus anything else) not yet in the lake."""
        import ibis

        batch = ibis.memtable(ids)
        known = self.backend.table(_EVENT_IDS).select("message_id")
        return self.backend.to_pyarrow(batch.anti_join(known, "message_id"))

    def recover(self) -> list[str]:
        """Remove lake files left by a crash before registration. Returns what was removed."""
        self.lake.clear_staging()
        registered = set(
            self.backend.to_pyarrow(self.backend.table(_EVENT_IDS).select("file").distinct())
            .column("file")
            .to_pylist()
        )
        registered |= set(
            self.backend.to_pyarrow(self.backend.table(_LAKE_FILES).select("path"))
            .column("path")
            .to_pylist()
        )
        removed = []
        for path in self.lake.root.glob("*/**/*.parquet"):
            rel = self.lake.relative(path)
            if rel.startswith("_staging/"):
                continue
            if rel not in registered:
                path.unlink()
                removed.append(rel)
        return removed

    def publish_events(self, files: list[StagedFile]) -> None:
        """Make staged event files part of the lake and remember their message ids.

        The ids of all files go in with one INSERT, so the registration is atomic:
        after a crash either every file of the batch counts or none does (and
        :meth:`recover` deletes the unregistered ones).
        """
        if not files:
            return
        self.lake.publish(files)
        parts = []
        for file in files:
            assert file.message_ids is not None, "event files carry their message ids"
            message_ids = file.message_ids
            rel = self.lake.relative(file.final)
            parts.append(
                pa.table(
                    {"message_id": message_ids, "file": pa.array([rel] * len(message_ids))},
                    schema=_EVENT_IDS_SCHEMA,
                )
            )
        self.backend.insert(_EVENT_IDS, pa.concat_tables(parts))

    def publish_snapshot(
        self,
        files: list[StagedFile],
        *,
        kind: str,
        content_hash: str,
        run_id: str,
        rows: int,
        at: dt.datetime,
    ) -> None:
        self.lake.publish(files)
        self.backend.insert(
            _LAKE_FILES,
            pa.table(
                {
                    "path": [self.lake.relative(f.final) for f in files],
                    "kind": [kind] * len(files),
                    "content_hash": [content_hash] * len(files),
                    "run_id": [run_id] * len(files),
                    "rows": [rows] * len(files),
                    "registered_at": [at] * len(files),
                },
                schema=_LAKE_FILES_SCHEMA,
            ),
        )

    def snapshot_known(self, kind: str, content_hash: str) -> bool:
        files = self.backend.table(_LAKE_FILES)
        hit = files.filter((files.kind == kind) & (files.content_hash == content_hash)).count()
        return bool(self.backend.execute(hit))

    def event_count(self) -> int:
        return int(self.backend.execute(self.backend.table(_EVENT_IDS).count()))

    def table_counts(self) -> dict[str, int]:
        counts = {}
        for name in sorted(self.backend.list_tables()):
            counts[name] = int(self.backend.execute(self.backend.table(name).count()))
        return counts

    def close(self) -> None:
        disconnect = getattr(self.backend, "disconnect", None)
        if disconnect is not None:
            disconnect()


def _ibis_schema(schema: pa.Schema) -> Any:
    import ibis

    return ibis.Schema.from_pyarrow(schema)
