"""``tenure ingest``: files in, events into the lake, bad records into quarantine.

For every input the flow is the same: a reader fills the ``candidates`` table
of the lake index's DuckDB connection, one batch at a time; one vectorized
pass validates and normalizes the batch; events already in the lake are
dropped (dedupe on messageId); the rest are written to the lake's date
partitions and registered; rejected records go to the operational store's
quarantine with their reason. A bad record never aborts a batch, and no batch
is ever half-loaded.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from tenure.collect._segment import (
    is_segment_parquet,
    load_arrow,
    load_lines,
    read_json_document,
    read_json_lines,
    read_segment_parquet,
)
from tenure.collect._suppress import Suppressed, drop_suppressed
from tenure.collect._tabular import (
    TabularMapping,
    builtin_mappings,
    candidates_from_rows,
    detect_mapping,
    load_mapping,
    read_columns,
    read_tabular,
)
from tenure.collect._validate import release, validate
from tenure.errors import IngestError
from tenure.project import Project
from tenure.store import (
    NewQuarantined,
    QuarantineRecord,
    QuarantineStatus,
    add_quarantined,
    finish_run,
    resolve_quarantined,
    start_run,
)
from tenure.warehouse import EVENT_COLUMNS, EVENT_SCHEMA

__all__ = ["IngestReport", "InputReport", "Progress", "ingest", "retry_quarantined"]

#: Called with (input label, units done, units in total or None) as work advances.
Progress = Callable[[str, int, int | None], None]

SEGMENT_SOURCE = "segment"
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_JSON_SUFFIXES = (".json", ".json.gz")
_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_KNOWN = (*_JSONL_SUFFIXES, *_JSON_SUFFIXES, *_CSV_SUFFIXES, *_PARQUET_SUFFIXES)

# The first occurrence of each message id in the batch that the lake does not
# hold yet: narrow, so the wide rows are produced once, straight into the files.
_FRESH = """
CREATE OR REPLACE TEMP TABLE fresh_ids AS
SELECT v._row, v.message_id
FROM valid_events v
    ANTI JOIN event_ids e ON v.message_id = e.message_id
    ANTI JOIN pending_events p ON v.message_id = p.message_id
QUALIFY row_number() OVER (PARTITION BY v.message_id ORDER BY v._row) = 1
"""
_DUCKDB_TYPES = {"string": "VARCHAR", "timestamp[us, tz=UTC]": "TIMESTAMPTZ"}
# New events wait here until enough have gathered to write large lake files:
# small inputs (a month of events, a CSV export) would otherwise each write a
# small file into every day they touch.
_PENDING = (
    "CREATE OR REPLACE TEMP TABLE pending_events ("
    + ", ".join(f'"{f.name}" {_DUCKDB_TYPES[str(f.type)]}' for f in EVENT_SCHEMA)
    + ")"
)
_FRESH_ROWS = (
    f"SELECT {', '.join(f'v.{chr(34)}{c}{chr(34)}' for c in EVENT_COLUMNS)} "
    "FROM valid_events v SEMI JOIN fresh_ids f ON v._row = f._row"
)


@dataclass(frozen=True, slots=True)
class InputReport:
    path: str
    format: str  # segment-jsonl | segment-json | segment-parquet | <mapping name>
    loaded: int
    duplicates: int
    quarantined: int
    #: records dropped because they carry an erased person's identifier
    suppressed: int = 0


@dataclass(frozen=True, slots=True)
class IngestReport:
    run_id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    inputs: tuple[InputReport, ...]
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def loaded(self) -> int:
        return sum(i.loaded for i in self.inputs)

    @property
    def duplicates(self) -> int:
        return sum(i.duplicates for i in self.inputs)

    @property
    def quarantined(self) -> int:
        return sum(i.quarantined for i in self.inputs)

    @property
    def suppressed(self) -> int:
        return sum(i.suppressed for i in self.inputs)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _KNOWN:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files named, and the ingestible files inside directories named, in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file() and _suffix(p) in _KNOWN)
        elif path.is_file():
            files.append(path)
        else:
            raise IngestError(f"{path}: no such file or directory")
    return files


def new_run_id(now: dt.datetime) -> str:
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class _Snapshot:
    table: pa.Table  # entity rows of an export batch
    entity: str


@dataclass(frozen=True, slots=True)
class _Input:
    """An opened input: its batches fill ``candidates``; each yields progress and a snapshot."""

    format: str
    source: str  # the events' source: segment, stripe, hubspot …
    batches: Iterator[tuple[int, _Snapshot | None]]
    total: int | None
    #: what quarantined records name as their source, enough to read them again
    #: on retry: "segment", or the mapping (a built-in name or a mapping file)
    reader: str = SEGMENT_SOURCE
    #: one candidate per record, numbered in row order (see ``validate``)
    numbered: bool = False


def _mapping_for(project: Project, path: Path, explicit: str | None) -> tuple[TabularMapping, str]:
    """The mapping for an export, and how to name it so that it can be loaded again."""
    if explicit is not None:
        return load_mapping(explicit, project.root), explicit
    resolved = str(path.resolve())
    for settings in project.config.sources.values():
        if settings.path and fnmatch.fnmatch(resolved, str(project.root / settings.path)):
            return load_mapping(settings.mapping, project.root), settings.mapping
    detected = detect_mapping(read_columns(path), builtin_mappings(), origin=str(path))
    return detected, detected.name


def _tabular_batches(
    con: duckdb.DuckDBPyConnection, path: Path, mapping: TabularMapping, rows: int
) -> Iterator[tuple[int, _Snapshot | None]]:
    done = 0
    for batch in read_tabular(path, mapping, batch_rows=rows):
        load_arrow(con, batch.candidates)
        done += batch.snapshot.num_rows
        yield done, _Snapshot(batch.snapshot, batch.entity)


def _open_input(
    project: Project, con: duckdb.DuckDBPyConnection, path: Path, mapping: str | None
) -> _Input:
    suffix = _suffix(path)
    rows = project.config.ingest.batch_rows
    batches: Iterator[tuple[int, _Snapshot | None]]
    if mapping is None and suffix in _JSONL_SUFFIXES:
        batches = ((done, None) for done in read_json_lines(path, con))
        return _Input("segment-jsonl", SEGMENT_SOURCE, batches, path.stat().st_size)
    if mapping is None and suffix in _JSON_SUFFIXES:

        def one() -> Iterator[tuple[int, _Snapshot | None]]:
            yield read_json_document(path, con), None

        return _Input("segment-json", SEGMENT_SOURCE, one(), None)
    if mapping is None and suffix in _PARQUET_SUFFIXES and is_segment_parquet(pq.read_schema(path)):
        total = pq.ParquetFile(path).metadata.num_rows
        batches = ((done, None) for done in read_segment_parquet(path, con, batch_rows=rows))
        return _Input("segment-parquet", SEGMENT_SOURCE, batches, total, numbered=True)
    if suffix in (*_CSV_SUFFIXES, *_PARQUET_SUFFIXES):
        chosen, reference = _mapping_for(project, path, mapping)
        batches = _tabular_batches(con, path, chosen, rows)
        return _Input(chosen.name, chosen.source, batches, None, reference)
    raise IngestError(
        f"{path}: cannot tell the format from the name {path.name!r}",
        hint="use .jsonl/.ndjson or .json for Segment events, .csv or .parquet for exports",
    )


def _keep_snapshot(
    project: Project, snapshot: _Snapshot, run_id: str, batch_no: int, now: dt.datetime
) -> None:
    """Keep an export's rows as an entity snapshot, once per distinct content."""
    if snapshot.table.num_rows == 0:
        return
    digest = hashlib.sha256()
    for name, column in zip(snapshot.table.column_names, snapshot.table.columns, strict=True):
        digest.update(name.encode())
        digest.update(repr(column.to_pylist()).encode())
    content_hash = digest.hexdigest()
    kind = f"snapshot:{snapshot.entity}"
    if project.index.snapshot_known(kind, content_hash):
        return
    files = project.lake.stage_snapshot(
        snapshot.entity, snapshot.table, now.date(), f"{run_id}-{batch_no:05d}"
    )
    project.index.register_snapshot(
        files,
        kind=kind,
        content_hash=content_hash,
        run_id=run_id,
        rows=snapshot.table.num_rows,
        at=now,
    )


@dataclass(frozen=True, slots=True)
class _BatchOutcome:
    loaded: int
    duplicates: int
    rejected: list[NewQuarantined]
    suppressed: Suppressed


def _load_batch(
    project: Project,
    *,
    label: str,
    source: str,
    reader: str,
    run_id: str,
    batch_no: int,
    now: dt.datetime,
    numbered: bool = False,
) -> _BatchOutcome:
    """Validate ``candidates``, write the new events to the lake, return what to quarantine."""
    con = project.index.con
    settings = project.config.ingest
    suppressed = drop_suppressed(project)  # erasure: see tenure.collect._suppress
    checked = validate(
        con,
        source=source,
        run_id=run_id,
        now=now,
        max_future=dt.timedelta(hours=settings.max_future_skew_hours),
        max_bytes=settings.max_event_bytes,
        numbered=numbered,
    )
    loaded = 0
    if checked.valid:
        con.execute(_FRESH)
        row = con.execute("SELECT count(*) FROM fresh_ids").fetchone()
        loaded = int(row[0]) if row else 0
        pending = _pending_count(con)
        if pending == 0 and loaded >= settings.batch_rows // 2:
            # large enough on its own: straight from the checked batch into the lake
            project.index.write_events(
                _FRESH_ROWS,
                f"{run_id}-{batch_no:05d}",
                ids="SELECT message_id FROM fresh_ids",
                run_id=run_id,
                at=now,
            )
        else:
            con.execute(f"INSERT INTO pending_events {_FRESH_ROWS}")
            if pending + loaded >= settings.batch_rows:
                _flush(project, run_id=run_id, batch_no=batch_no, now=now)
        con.execute("DROP TABLE fresh_ids")
    release(con)
    rejected = [
        NewQuarantined(
            source=reader,
            source_file=label,
            record_number=row["record_number"],
            raw=row["raw"] or "",
            reason_code=row["reason_code"],
            reason=row["reason"],
        )
        for row in checked.rejected.to_pylist()
    ]
    return _BatchOutcome(loaded, checked.valid - loaded, rejected, suppressed)


def _pending_count(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT count(*) FROM pending_events").fetchone()
    return int(row[0]) if row else 0


def _start_pending(project: Project) -> None:
    project.index.con.execute(_PENDING)


def _flush(project: Project, *, run_id: str, batch_no: int, now: dt.datetime) -> None:
    """Write the pending events to the lake and register them; the table is left empty."""
    con = project.index.con
    if _pending_count(con) == 0:
        return
    project.index.write_events(
        "SELECT * FROM pending_events",
        f"{run_id}-{batch_no:05d}",
        ids="SELECT message_id FROM pending_events",
        run_id=run_id,
        at=now,
    )
    con.execute("DELETE FROM pending_events")


def _finish(project: Project, run_id: str, reports: list[InputReport], error: str | None) -> None:
    with project.store.begin() as connection:
        finish_run(
            connection,
            run_id,
            project.clock(),
            loaded=sum(r.loaded for r in reports),
            duplicates=sum(r.duplicates for r in reports),
            quarantined=sum(r.quarantined for r in reports),
            error=error,
        )


def ingest(
    project: Project,
    paths: Sequence[Path],
    *,
    mapping: str | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Load *paths* (files or directories) into the lake. Idempotent per record."""
    files = expand_paths(paths)
    started = project.clock()
    run_id = new_run_id(started)
    with project.store.begin() as connection:
        start_run(connection, run_id, started, [str(p) for p in files])
    project.index.recover()
    _start_pending(project)
    reports: list[InputReport] = []
    reasons: Counter[str] = Counter()
    batch_no = 0
    try:
        for path in files:
            label = str(path)
            opened = _open_input(project, project.index.con, path, mapping)
            loaded = duplicates = quarantined = suppressed = 0
            for done, snapshot in opened.batches:
                now = project.clock()
                outcome = _load_batch(
                    project,
                    label=label,
                    source=opened.source,
                    reader=opened.reader,
                    run_id=run_id,
                    batch_no=batch_no,
                    now=now,
                    numbered=opened.numbered,
                )
                if snapshot is not None:  # without the rows of erased people (suppressed)
                    kept = _Snapshot(outcome.suppressed.keep(snapshot.table), snapshot.entity)
                    _keep_snapshot(project, kept, run_id, batch_no, now)
                suppressed += outcome.suppressed.count
                batch_no += 1
                with project.store.begin() as connection:
                    quarantined += add_quarantined(connection, run_id, now, outcome.rejected)
                loaded += outcome.loaded
                duplicates += outcome.duplicates
                reasons.update(r.reason_code for r in outcome.rejected)
                if progress is not None:
                    progress(label, done, opened.total)
            reports.append(
                InputReport(label, opened.format, loaded, duplicates, quarantined, suppressed)
            )
        _flush(project, run_id=run_id, batch_no=batch_no, now=project.clock())
    except BaseException as error:
        _finish(project, run_id, reports, f"{type(error).__name__}: {error}")
        raise
    _finish(project, run_id, reports, None)
    return IngestReport(run_id, started, project.clock(), tuple(reports), dict(reasons))


def retry_quarantined(
    project: Project, records: Sequence[QuarantineRecord], *, progress: Progress | None = None
) -> IngestReport:
    """Run quarantined records through validation again (after a fix to config or mapping).

    Records that now pass are loaded and marked ``loaded``; records that fail
    again are marked ``requarantined`` and quarantined anew with today's reason.
    """
    started = project.clock()
    run_id = new_run_id(started)
    with project.store.begin() as connection:
        start_run(connection, run_id, started, [f"quarantine:{r.id}" for r in records])
    project.index.recover()
    _start_pending(project)
    con = project.index.con
    reports: list[InputReport] = []
    reasons: Counter[str] = Counter()
    groups: dict[tuple[str, str], list[QuarantineRecord]] = {}
    for record in records:
        groups.setdefault((record.source, record.source_file), []).append(record)
    try:
        for batch_no, ((source, label), group) in enumerate(sorted(groups.items())):
            if source == SEGMENT_SOURCE:
                event_source = source
                load_lines(con, [r.record_number for r in group], [r.raw.encode() for r in group])
            else:
                chosen = load_mapping(source, project.root)
                event_source = chosen.source
                load_arrow(
                    con, candidates_from_rows(chosen, [(r.record_number, r.raw) for r in group])
                )
            now = project.clock()
            outcome = _load_batch(
                project,
                label=label,
                source=event_source,
                reader=source,
                run_id=run_id,
                batch_no=batch_no,
                now=now,
            )
            failed = {r.record_number for r in outcome.rejected}
            with project.store.begin() as connection:
                resolve_quarantined(
                    connection,
                    [r.id for r in group if r.record_number not in failed],
                    QuarantineStatus.LOADED,
                    now,
                    run_id,
                )
                resolve_quarantined(
                    connection,
                    [r.id for r in group if r.record_number in failed],
                    QuarantineStatus.REQUARANTINED,
                    now,
                    run_id,
                )
                # a record that fails again is quarantined anew with today's reason
                added = add_quarantined(connection, run_id, now, outcome.rejected)
            reasons.update(r.reason_code for r in outcome.rejected)
            suppressed = outcome.suppressed.count
            reports.append(
                InputReport(
                    label, f"retry:{source}", outcome.loaded, outcome.duplicates, added, suppressed
                )
            )
            if progress is not None:
                progress(label, len(group), len(group))
        _flush(project, run_id=run_id, batch_no=len(groups), now=project.clock())
    except BaseException as error:
        _finish(project, run_id, reports, f"{type(error).__name__}: {error}")
        raise
    _finish(project, run_id, reports, None)
    return IngestReport(run_id, started, project.clock(), tuple(reports), dict(reasons))
