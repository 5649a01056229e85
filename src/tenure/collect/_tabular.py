"""CSV and Parquet exports, read through a column mapping into candidate records.

An export row (a Stripe subscription, a HubSpot deal, a Zendesk ticket …)
becomes the events its mapping describes, each a candidate record with exactly
:data:`~tenure.collect._candidates.CANDIDATE_SCHEMA`, plus the row itself as an
entity snapshot. Nothing here rejects a record: a row the CSV parser cannot
split becomes a ``malformed_row`` candidate, a cell that is not of its mapped
type a ``wrong_type`` candidate naming the column, and the validator
quarantines both while the rest of the file loads.

Every candidate carries a natural key (``mapping:key values:event``), so
reading the same export again yields the same message ids and loads nothing
twice.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tenure.collect._candidates import CANDIDATE_SCHEMA
from tenure.collect._mapping import (
    BadCell,
    CellReader,
    ConditionReader,
    EventMapping,
    EventType,
    Row,
    Scalar,
    TabularMapping,
    parse_mapping_yaml,
    parse_timestamp,
    plain_position,
    value_reader,
)
from tenure.collect._reasons import ReasonCode
from tenure.errors import IngestError, MappingError

__all__ = [
    "TabularBatch",
    "TabularMapping",
    "builtin_mappings",
    "candidates_from_rows",
    "detect_mapping",
    "load_mapping",
    "read_columns",
    "read_tabular",
    "snapshot_name",
]

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_BLOCK_BYTES = 4 << 20
_MAPPING_HINT = (
    "pass --mapping NAME (see tenure ingest --list-mappings) or --mapping path/to/mapping.yaml"
)


@dataclass(frozen=True, slots=True)
class TabularBatch:
    """Candidates and entity rows from one slice of an export."""

    candidates: pa.Table  # CANDIDATE_SCHEMA
    snapshot: pa.Table  # record_number, then every source column as string (snake_case)
    entity: str
    source: str
    mapping: str = ""
    #: Column references of the mapping that the file does not have (their values are empty).
    missing_columns: tuple[str, ...] = ()


# --------------------------------------------------------------------------- mappings


@cache
def _builtin() -> tuple[TabularMapping, ...]:
    folder = resources.files("tenure.collect").joinpath("mappings")
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            text = entry.read_text(encoding="utf-8")
            found.append(parse_mapping_yaml(text, origin=f"built-in mapping {entry.name}"))
    return tuple(found)


def builtin_mappings() -> dict[str, TabularMapping]:
    """The mappings shipped with tenure, by name (``stripe.subscriptions`` …)."""
    return {m.name: m for m in _builtin()}


def load_mapping(name_or_path: str, project_dir: Path) -> TabularMapping:
    """A built-in mapping by name, or a mapping YAML file (relative to the project)."""
    builtins = builtin_mappings()
    if name_or_path in builtins:
        return builtins[name_or_path]
    path = Path(name_or_path).expanduser()
    if not path.is_absolute():
        path = project_dir / path
    if not path.is_file():
        raise MappingError(
            f"{name_or_path!r} is not a built-in mapping and {path} is not a file",
            hint="built-in mappings: " + ", ".join(sorted(builtins)),
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise MappingError(f"{path}: cannot be read ({error})") from None
    return parse_mapping_yaml(text, origin=str(path))


def _shown(columns: Sequence[str], limit: int = 12) -> str:
    more = f", … ({len(columns) - limit} more)" if len(columns) > limit else ""
    return ", ".join(repr(c) for c in columns[:limit]) + more


def detect_mapping(
    columns: Iterable[str],
    mappings: Mapping[str, TabularMapping] | Iterable[TabularMapping],
    *,
    origin: str = "the file",
) -> TabularMapping:
    """The one mapping whose ``detect`` columns are all in ``columns``.

    Raises :class:`MappingError` when none or several match, naming them.
    """
    header = [c.strip().lstrip("\ufeff") for c in columns]
    present = set(header)
    pool = list(mappings.values()) if isinstance(mappings, Mapping) else list(mappings)
    matches = [m for m in pool if set(m.detect) <= present]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(m.name for m in matches)
        raise MappingError(
            f"{origin} matches several mappings ({names}); pass --mapping to choose one",
            hint=_MAPPING_HINT,
        )
    known = "; ".join(f"{m.name} needs {', '.join(m.detect)}" for m in pool)
    raise MappingError(
        f"no mapping recognises the columns of {origin} ({_shown(header)}); "
        f"pass --mapping to name one. Known mappings: {known or 'none'}",
        hint=_MAPPING_HINT,
    )


# --------------------------------------------------------------------------- row plans


class _EventPlan:
    __slots__ = (
        "event",
        "field",
        "fmt",
        "label",
        "message_id",
        "tests",
        "timestamp",
        "type",
        "values",
    )

    def __init__(self, event: EventMapping, index: Mapping[str, int], tz: dt.tzinfo) -> None:
        self.type = event.type.value
        self.event = event.event
        self.label = event.label
        self.field = "properties" if event.type is EventType.TRACK else "traits"
        self.timestamp = CellReader(event.timestamp, index)
        self.fmt = event.timestamp_format
        self.tests = tuple(ConditionReader(c, index) for c in event.when)
        self.message_id = CellReader(event.message_id, index) if event.message_id else None
        plans = [(n, value_reader(s, index, tz)) for n, s in event.values.items()]
        self.values = tuple((n, plain_position(p), p) for n, p in plans)


@dataclass(frozen=True, slots=True)
class _Malformed:
    record_number: int
    text: str
    expected: int
    actual: int


class _Out:
    """Candidate rows being collected, as tuples in CANDIDATE_SCHEMA's field order."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def error(
        self,
        record_number: int,
        raw: str,
        code: ReasonCode,
        reason: str,
        *,
        kind: str | None = None,
        event: str | None = None,
        identity: tuple[str | None, str | None, str | None] = (None, None, None),
        context: str | None = None,
    ) -> None:
        user_id, group_id, email = identity
        self.rows.append(
            (record_number, raw, code.value, reason, None, kind, event, user_id, None,
             group_id, None, email, None, None, None, None, context, None)
        )  # fmt: skip

    def table(self) -> pa.Table:
        columns = list(zip(*self.rows, strict=True)) or [() for _ in CANDIDATE_SCHEMA]
        arrays = [pa.array(c, f.type) for c, f in zip(columns, CANDIDATE_SCHEMA, strict=True)]
        return pa.Table.from_arrays(arrays, schema=CANDIDATE_SCHEMA)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


class _Plan:
    """A mapping compiled against one header: column positions resolved once."""

    def __init__(self, mapping: TabularMapping, header: Sequence[str]) -> None:
        index: dict[str, int] = {}
        for i, name in enumerate(header):
            index.setdefault(name, i)
        tz = mapping.zone
        self.mapping = mapping
        self.header = tuple(header)
        self.keys = tuple(CellReader((k,), index) for k in mapping.key)
        ident = mapping.identity
        self.user_id = CellReader(ident.user_id, index) if ident.user_id else None
        self.group_id = CellReader(ident.group_id, index) if ident.group_id else None
        self.email = CellReader(ident.email, index) if ident.email else None
        self.external = tuple(
            (CellReader(x.column, index), x.type, x.collection.value) for x in ident.external_ids
        )
        self.events = tuple(_EventPlan(e, index, tz) for e in mapping.events)
        self.tz = tz
        self.origin = {"source": mapping.source.value, "mapping": mapping.name}
        self._stamps: dict[tuple[str | None, str], str] = {}
        self.missing = tuple(
            " or ".join(group)
            for group in mapping.column_groups()
            if not any(c in index for c in group)
        )

    @staticmethod
    def _text(cell: CellReader | None, clean: Row) -> str | None:
        return cell.text(clean) if cell is not None else None

    def _timestamp(self, plan: _EventPlan, clean: Row) -> str | None:
        text = plan.timestamp.text(clean)
        if text is None:
            return None
        cache = self._stamps
        key = (plan.fmt, text)
        stamp = cache.get(key)
        if stamp is None:
            if len(cache) > 65536:
                cache.clear()
            # unreadable times pass through as written: the validator says why they are bad
            stamp = cache[key] = parse_timestamp(text, plan.fmt, self.tz) or text
        return stamp

    def emit(self, record_number: int, row: Row, out: _Out) -> None:
        """The candidates of one row (none for a row whose cells are all empty)."""
        if not any(row):
            return
        mapping = self.mapping
        raw = _json(dict(zip(self.header, row, strict=True)))
        clean = [(v.strip() or None) if v else None for v in row]
        text = self._text
        user_id, group_id, email = (
            text(self.user_id, clean),
            text(self.group_id, clean),
            text(self.email, clean),
        )
        external = []
        for cell, kind, collection in self.external:
            found = cell.text(clean)
            if found is not None:
                external.append(
                    {"id": found, "type": kind, "collection": collection, "encoding": "none"}
                )
        context = _json({"externalIds": external, **self.origin})
        keys = [text(cell, clean) or "" for cell in self.keys]
        if not any(keys):
            reason = (
                f"key column {' and '.join(map(repr, mapping.key))} is empty, so the "
                f"{mapping.name} record cannot be identified"
            )
            out.error(
                record_number,
                raw,
                ReasonCode.MISSING_PROPERTY,
                reason,
                identity=(user_id, group_id, email),
                context=context,
            )
            return
        produced = []
        problems: dict[tuple[str, str, str], list[str]] = {}
        for plan in self.events:
            applies = True
            for test in plan.tests:
                if not test.holds(clean):
                    applies = False
                    break
            if not applies:
                continue
            values: dict[str, Scalar] = {}
            for name, position, value_plan in plan.values:
                if position >= 0:
                    plain = clean[position]
                    if plain is not None:
                        values[name] = plain
                    continue
                try:
                    output = value_plan.evaluate(clean)
                except BadCell as bad:
                    where = (bad.column, bad.value, bad.expected)
                    problems.setdefault(where, []).append(f"{name!r} of {plan.label}")
                    continue
                if output is not None:
                    values[name] = output
            produced.append((plan, values))
        if problems:
            reason = "; ".join(
                f"column {column!r}: {value[:80]!r} is not {expected} (for {', '.join(uses)})"
                for (column, value, expected), uses in problems.items()
            )
            first = produced[0][0]
            out.error(
                record_number,
                raw,
                ReasonCode.WRONG_TYPE,
                reason,
                kind=first.type,
                event=first.event,
                identity=(user_id, group_id, email),
                context=context,
            )
            return
        prefix = f"{mapping.name}:{'|'.join(keys)}:"
        append = out.rows.append
        for plan, values in produced:
            payload = _json(values)
            track = plan.field == "properties"
            append(
                (record_number, raw, None, None, text(plan.message_id, clean), plan.type,
                 plan.event, user_id, None, group_id, None, email, self._timestamp(plan, clean),
                 None, payload if track else None, None if track else payload, context,
                 prefix + plan.label)
            )  # fmt: skip


# --------------------------------------------------------------------------- files


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(_PARQUET_SUFFIXES)


def _unreadable(path: Path, error: Exception) -> IngestError:
    text = str(error)
    hint = "save the export as UTF-8 CSV and ingest it again" if "UTF8" in text else None
    return IngestError(
        f"{path}: cannot be read ({text.splitlines()[0] if text else error})", hint=hint
    )


def _csv_header(path: Path) -> list[str]:
    options = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda _: "skip")
    try:
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(use_threads=False), parse_options=options
        )
    except (OSError, pa.ArrowException) as error:
        raise _unreadable(path, error) from None
    names = list(reader.schema.names)
    reader.close()
    return names


def read_columns(path: Path) -> list[str]:
    """The header of a CSV or Parquet export (names stripped of whitespace)."""
    try:
        names = pq.read_schema(path).names if _is_parquet(path) else _csv_header(path)
    except (OSError, pa.ArrowException) as error:
        raise _unreadable(path, error) from None
    return [n.strip() for n in names]


_Piece = tuple[pa.RecordBatch | None, list[int], list[_Malformed]]


def _csv_pieces(path: Path, names: list[str]) -> Iterator[_Piece]:
    malformed: list[_Malformed] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        # with use_threads=False the parser knows each row's number (the header is row 1)
        number = (row.number or 0) - 1
        malformed.append(_Malformed(number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=_CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except (OSError, pa.ArrowException) as error:
        raise _unreadable(path, error) from None
    skipped: set[int] = set()
    reported = 0
    last = 0
    with reader:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowException as error:
                raise _unreadable(path, error) from None
            # the parser reports a block's bad rows before it hands over the block
            fresh = malformed[reported:]
            reported = len(malformed)
            skipped.update(m.record_number for m in fresh)
            ordinals = []
            for _ in range(batch.num_rows):
                last += 1
                while last in skipped:
                    last += 1
                ordinals.append(last)
            yield batch, ordinals, fresh
    if len(malformed) > reported:
        yield None, [], malformed[reported:]


def _stringify(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    kind = column.type
    if pa.types.is_string(kind):
        return column
    if pa.types.is_nested(kind):
        return pa.array([None if v is None else _json(v) for v in column.to_pylist()], pa.string())
    if pa.types.is_timestamp(kind):
        # microseconds, and UTC for zoned times, so the text reads back as ISO 8601
        column = pc.cast(column, pa.timestamp("us", tz="UTC" if kind.tz else None), safe=False)
    try:
        return pc.cast(column, pa.string())
    except pa.ArrowException:
        return pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())


def _parquet_pieces(path: Path, batch_rows: int) -> Iterator[_Piece]:
    try:
        source = pq.ParquetFile(path)
        done = 0
        for batch in source.iter_batches(batch_size=batch_rows):
            columns = [_stringify(c) for c in batch.columns]
            strings = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
            yield strings, list(range(done + 1, done + batch.num_rows + 1)), []
            done += batch.num_rows
    except (OSError, pa.ArrowException) as error:
        raise _unreadable(path, error) from None


def _rechunk(
    pieces: Iterable[_Piece], batch_rows: int
) -> Iterator[tuple[pa.Table, list[int], list[_Malformed]]]:
    """Slices of at most ``batch_rows`` rows, each with the bad rows that fall inside it."""
    batches: list[pa.RecordBatch] = []
    ordinals: list[int] = []
    bad: list[_Malformed] = []
    schema = None

    def flush(final: bool) -> tuple[pa.Table, list[int], list[_Malformed]]:
        nonlocal batches, ordinals, bad
        table = pa.Table.from_batches(batches, schema=schema)
        limit = ordinals[-1] if ordinals and not final else None
        keep = [m for m in bad if limit is None or m.record_number <= limit]
        result = (table, ordinals, keep)
        batches, ordinals = [], []
        bad = [m for m in bad if limit is not None and m.record_number > limit]
        return result

    for batch, numbers, malformed in pieces:
        bad.extend(malformed)
        if batch is None:
            continue
        schema = batch.schema
        offset = 0
        while offset < batch.num_rows:
            take = min(batch_rows - len(ordinals), batch.num_rows - offset)
            batches.append(batch.slice(offset, take))
            ordinals.extend(numbers[offset : offset + take])
            offset += take
            if len(ordinals) == batch_rows:
                yield flush(final=False)
    if ordinals or bad:
        if schema is None:
            yield pa.table({}), [], bad
        else:
            yield flush(final=True)


_NOT_WORD = re.compile(r"[^0-9a-zA-Z]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snapshot_name(column: str) -> str:
    """The snake_case name an export's column has in its snapshot ("" for a blank name).

    Two columns of one file that come out alike are told apart by a suffix there
    (``_2``); this is the name before that.
    """
    base = _NOT_WORD.sub("_", _CAMEL.sub("_", column)).strip("_").lower()
    return f"col_{base}" if base and base[0].isdigit() else base


def _snapshot_names(header: Sequence[str]) -> list[str]:
    """snake_case column names for the snapshot, unique and clear of ``record_number``."""
    taken = {"record_number"}
    names = []
    for i, column in enumerate(header):
        base = snapshot_name(column) or f"column_{i + 1}"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        names.append(name)
    return names


def _unique_header(names: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    header = []
    for name in names:
        clean, n = name.strip().lstrip("\ufeff"), 2
        unique = clean
        while unique in seen:
            unique, n = f"{clean} ({n})", n + 1
        seen.add(unique)
        header.append(unique)
    return header


def read_tabular(path: Path, mapping: TabularMapping, *, batch_rows: int) -> Iterator[TabularBatch]:
    """Read a CSV or Parquet export through ``mapping``, ``batch_rows`` rows at a time.

    CSV cells are read as text exactly as written; Parquet values are turned
    into text. Raises :class:`MappingError` when the file lacks a column the
    mapping requires (``detect`` and ``key``) and :class:`IngestError` when it
    cannot be read at all; bad rows are never raised, they become candidates
    with a reader error.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    if _is_parquet(path):
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException) as error:
            raise _unreadable(path, error) from None
        pieces = _parquet_pieces(path, batch_rows)
    else:
        names = _csv_header(path)
        pieces = _csv_pieces(path, names)
    header = _unique_header(names)
    absent = [c for c in mapping.required_columns() if c not in header]
    if absent:
        raise MappingError(
            f"{path} lacks the column{'s' if len(absent) > 1 else ''} {_shown(absent)} that "
            f"mapping {mapping.name} needs; the file has {_shown(header)}",
            hint=_MAPPING_HINT,
        )
    plan = _Plan(mapping, header)
    snapshot_names = _snapshot_names(header)
    for table, ordinals, bad in _rechunk(pieces, batch_rows):
        out = _Out()
        malformed = iter(bad)
        pending = next(malformed, None)
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        for number, row in zip(ordinals, zip(*columns, strict=True), strict=True):
            while pending is not None and pending.record_number < number:
                _add_malformed(pending, out)
                pending = next(malformed, None)
            plan.emit(number, row, out)
        while pending is not None:
            _add_malformed(pending, out)
            pending = next(malformed, None)
        data = table.columns if table.num_columns == len(header) else []
        data = data or [pa.array([], pa.string()) for _ in header]
        snapshot = pa.Table.from_arrays(
            [pa.array(ordinals, pa.int64()), *data], names=["record_number", *snapshot_names]
        )
        yield TabularBatch(
            out.table(),
            snapshot,
            mapping.entity.value,
            mapping.source.value,
            mapping.name,
            plan.missing,
        )


def _add_malformed(row: _Malformed, out: _Out) -> None:
    reason = (
        f"row {row.record_number} has {row.actual} fields but the header has {row.expected} columns"
    )
    out.error(row.record_number, row.text, ReasonCode.MALFORMED_ROW, reason)


def candidates_from_rows(mapping: TabularMapping, rows: Iterable[tuple[int, str]]) -> pa.Table:
    """Candidates again from quarantined rows: ``(record_number, raw)`` pairs.

    ``raw`` is the row as this module stored it, a JSON object of column to
    value; a malformed CSV line cannot be mapped and stays malformed.
    """
    out = _Out()
    plans: dict[tuple[str, ...], _Plan] = {}
    for record_number, raw in rows:
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            reason = (
                f"row {record_number} is not a row of columns (it was a malformed CSV line): "
                "correct the file and ingest it again"
            )
            out.error(record_number, raw, ReasonCode.MALFORMED_ROW, reason)
            continue
        header = tuple(str(k) for k in row)
        plan = plans.get(header) or plans.setdefault(header, _Plan(mapping, header))
        values = [None if v is None else str(v) for v in row.values()]
        plan.emit(record_number, values, out)
    return out.table()
