"""Rewriting the lake's files without erased people, through the lake index.

Event files: an event *belongs* to an erased person when it carries one of
their identifiers as stitching reads them (userId, anonymousId, previousId,
email, a person's external id); it is removed. Another person's event that
mentions one of their emails in its JSON text keeps its place with the
address pseudonymized (as :func:`tenure.govern.erasure.erase` does in the
inbox; their other ids, which can be short and common strings, are only
looked for where an event names its person). Message ids are not touched:
the removed events' ids stay registered, so loading the same file again
finds them already seen.

Entity snapshots (export rows): a row whose person columns — those the
mappings writing the entity read a person's user id, email or external id
from (:func:`person_columns`) — hold one of their identifiers' values (emails
compared without case), or with any cell mentioning one of their emails, is
removed. Other cells are not compared with their ids: a short id such as a
HubSpot record id ``5151`` may well be another row's phone number, seat count
or amount. For an entity no known mapping writes, every cell is compared.
Person feature snapshots (``features/person/``) lose the rows of their
profiles.

Only files holding such rows are rewritten; each is replaced by a new file (or
by none, when nothing is left) in one all-or-nothing swap of
:meth:`tenure.warehouse.LakeIndex.replace_files`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tenure.collect._mapping import Collection
from tenure.collect._tabular import TabularMapping, snapshot_name
from tenure.govern._erased import Erased
from tenure.govern.pii import Pseudonymizer
from tenure.warehouse import LakeIndex, Replacement, StagedFile, SwapPhase

__all__ = ["LakeRewrite", "person_columns", "rewrite_lake"]


@dataclass(frozen=True, slots=True)
class LakeRewrite:
    events_removed: int = 0
    events_redacted: int = 0
    event_files: int = 0  # event files rewritten (or removed, when nothing was left)
    snapshot_rows_removed: int = 0
    snapshot_files: int = 0
    feature_rows_removed: int = 0


def _sql_list(values: list[str]) -> str:
    if not values:
        return "[]::VARCHAR[]"
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _belongs(erased: Erased) -> str:
    """SQL over the lake's event columns: the event carries an erased identifier."""
    users, anons = erased.values("user_id"), erased.values("anonymous_id")
    arms = [
        f"list_contains({_sql_list(users)}, user_id)",
        f"list_contains({_sql_list(anons)}, anonymous_id)",
        f"list_contains({_sql_list(sorted({*users, *anons}))}, previous_id)",
        f"list_contains({_sql_list(erased.values('email'))}, lower(email))",
    ]
    externals = erased.external_ids()
    if externals:
        entry = "list_transform(json_extract(context, '$.externalIds[*]'), e -> CASE WHEN " \
            "lower(coalesce(json_extract_string(e, '$.collection'), 'users')) <> 'accounts' " \
            "THEN 'external_id:' || trim(json_extract_string(e, '$.type')) || ':' " \
            "|| trim(json_extract_string(e, '$.id')) END)"  # fmt: skip
        # CASE, not AND: json_extract raises on text that is not JSON
        arms.append(
            "CASE WHEN context LIKE '%externalIds%' AND json_valid(context) "
            f"THEN list_has_any({entry}, {_sql_list(externals)}) ELSE false END"
        )
    return "coalesce(" + " OR ".join(f"coalesce({a}, false)" for a in arms) + ", false)"


_TEXT = ("properties", "traits", "context")


def _mentions(erased: Erased) -> str:
    pattern = erased.email_pattern()
    if pattern is None:
        return "false"
    text = " || ' ' || ".join(f"coalesce(lower({c}), '')" for c in _TEXT)
    return f"regexp_matches({text}, '{pattern.replace(chr(39), chr(39) * 2)}')"


def _redacted(column: str, erased: Erased, masker: Pseudonymizer) -> str:
    expr = column
    for email in sorted(erased.emails):
        pattern = "(?i)" + _regex_escape(email)
        expr = (
            f"regexp_replace({expr}, '{pattern.replace(chr(39), chr(39) * 2)}', "
            f"'{masker.pseudonym(email)}', 'g')"
        )
    return expr


def _regex_escape(text: str) -> str:
    return "".join("\\" + c if not (c.isalnum() or c in "@_-") else c for c in text)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _rewrite_events(
    index: LakeIndex,
    erased: Erased,
    masker: Pseudonymizer,
    run_id: str,
    old: list[str],
    new: list[Replacement],
) -> tuple[int, int]:
    """Stage the replacements of event files holding erased people; (removed, redacted)."""
    lake, con = index.lake, index.con
    files = sorted(p for p, kind in index.file_kinds().items() if kind == "events")
    if not files:
        return 0, 0
    belongs, mentions = _belongs(erased), _mentions(erased)
    listed = "[" + ", ".join(f"'{_sql_path(lake.root / f)}'" for f in files) + "]"
    touched = con.execute(
        f"""SELECT filename, count(*) FILTER (WHERE {belongs}),
                   count(*) FILTER (WHERE NOT {belongs}), count(*)
        FROM read_parquet({listed}, filename = true, hive_partitioning = false)
        WHERE {belongs} OR {mentions}
        GROUP BY filename ORDER BY filename"""
    ).fetchall()
    staging = lake.staging_dir / f"erasure-{run_id}"
    removed = redacted = 0
    for number, (filename, gone, kept_touched, _) in enumerate(touched):
        path = Path(filename)
        removed += int(gone)
        redacted += int(kept_touched)
        old.append(lake.relative(path))
        total = pq.ParquetFile(path).metadata.num_rows
        if total == int(gone):
            continue  # nothing of anyone else is left in the file
        staging.mkdir(parents=True, exist_ok=True)
        staged = staging / f"{number:05d}.parquet"
        columns = ", ".join(
            _redacted(f'"{c}"', erased, masker) + f' AS "{c}"' if c in _TEXT else f'"{c}"'
            for c in pq.read_schema(path).names
        )
        con.execute(
            f"""COPY (SELECT {columns} FROM read_parquet('{_sql_path(path)}',
                        hive_partitioning = false) WHERE NOT {belongs})
            TO '{_sql_path(staged)}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 262144)"""
        )
        final = path.parent / f"erasure-{run_id}-{number:05d}.parquet"
        new.append(Replacement(StagedFile(staged, final, None), "events", total - int(gone)))
    return removed, redacted


def snapshot_hash(table: pa.Table) -> str:
    """The content hash ingest gives an export's snapshot (so a re-ingest is recognized)."""
    digest = hashlib.sha256()
    for name, column in zip(table.column_names, table.columns, strict=True):
        digest.update(name.encode())
        digest.update(repr(column.to_pylist()).encode())
    return digest.hexdigest()


def person_columns(mappings: Iterable[TabularMapping]) -> dict[str, frozenset[str]]:
    """Per snapshot entity, the snapshot columns *mappings* read a person's identifiers from:
    user id, email, and external ids outside the accounts collection."""
    found: dict[str, set[str]] = {}
    for mapping in mappings:
        ident = mapping.identity
        groups = [g for g in (ident.user_id, ident.email) if g is not None]
        groups += [x.column for x in ident.external_ids if x.collection is not Collection.ACCOUNTS]
        names = found.setdefault(str(mapping.entity), set())
        names.update(snapshot_name(column) for group in groups for column in group)
    return {entity: frozenset(names) for entity, names in found.items()}


def _erased_rows(
    table: pa.Table, erased: Erased, columns: frozenset[str] | None = None
) -> pa.Array:
    """Which rows of an export snapshot hold an erased person's identifier or email.

    Identifier values are looked for in *columns* (every string column when
    None); emails, which cannot be mistaken for other data, in every cell.
    """
    exact = pa.array(erased.cell_values(), pa.string())
    emails = pa.array(sorted(erased.emails), pa.string())
    pattern = erased.email_pattern()
    hit = pa.array([False] * table.num_rows, pa.bool_())
    for name, column in zip(table.column_names, table.columns, strict=True):
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            continue
        trimmed = pc.utf8_trim_whitespace(column)
        lowered = pc.utf8_lower(trimmed)
        found = pc.is_in(lowered, value_set=emails)
        if columns is None or name in columns:
            found = pc.or_(found, pc.is_in(trimmed, value_set=exact))
        if pattern is not None:
            found = pc.or_(found, pc.match_substring_regex(lowered, pattern))
        hit = pc.or_(hit, pc.fill_null(found, False))
    return hit


def _rewrite_snapshots(
    index: LakeIndex,
    erased: Erased,
    run_id: str,
    old: list[str],
    new: list[Replacement],
    columns: Mapping[str, frozenset[str]],
) -> tuple[int, int]:
    lake = index.lake
    removed = files = 0
    for number, (rel, kind) in enumerate(sorted(index.file_kinds().items())):
        if not kind.startswith("snapshot:"):
            continue
        path = lake.root / rel
        table = pq.read_table(path)
        hit = _erased_rows(table, erased, columns.get(kind.partition(":")[2]))
        gone = int(pc.sum(hit).as_py() or 0)
        if gone == 0:
            continue
        removed += gone
        files += 1
        old.append(rel)
        kept = table.filter(pc.invert(hit))
        if kept.num_rows == 0:
            continue
        day = dt.date.fromisoformat(path.parent.name.partition("=")[2])
        entity = kind.partition(":")[2]
        [staged] = lake.stage_snapshot(entity, kept, day, f"erasure-{run_id}-s{number:05d}")
        new.append(Replacement(staged, kind, kept.num_rows, snapshot_hash(kept)))
    return removed, files


def _rewrite_feature_snapshots(root: Path, erased: Erased) -> int:
    """Person feature snapshots without the erased profiles (each file replaced atomically)."""
    if not erased.profiles:
        return 0
    profiles = pa.array(sorted(erased.profiles), pa.string())
    removed = 0
    for path in sorted((root / "features" / "person").glob("as_of=*/features.parquet")):
        table = pq.read_table(path)
        if "entity_id" not in table.column_names:
            continue
        hit = pc.fill_null(pc.is_in(table["entity_id"], value_set=profiles), False)
        gone = int(pc.sum(hit).as_py() or 0)
        if gone == 0:
            continue
        tmp = path.with_name("features.parquet.tmp")
        pq.write_table(table.filter(pc.invert(hit)), tmp)
        os.replace(tmp, path)
        removed += gone
    return removed


def _scrub_set_aside(index: LakeIndex, erased: Erased) -> int:
    """Delete crash leftovers set aside in ``_unregistered/`` that hold erased people.

    Their events were loaded again after the crash; they are kept only for
    inspection, and nothing of an erased person is kept for that.
    """
    deleted = 0
    belongs, mentions = _belongs(erased), _mentions(erased)
    for path in sorted((index.lake.root / "_unregistered").rglob("*.parquet")):
        rel = path.relative_to(index.lake.root / "_unregistered").as_posix()
        if rel.startswith("events/"):
            row = index.con.execute(
                f"""SELECT count(*) FROM read_parquet('{_sql_path(path)}',
                    hive_partitioning = false) WHERE {belongs} OR {mentions}"""
            ).fetchone()
            hit = bool(row and row[0])
        else:
            hit = bool(pc.any(_erased_rows(pq.read_table(path), erased)).as_py())
        if hit:
            path.unlink()
            deleted += 1
    return deleted


def rewrite_lake(
    index: LakeIndex,
    erased: Erased,
    masker: Pseudonymizer,
    *,
    run_id: str,
    at: dt.datetime,
    columns: Mapping[str, frozenset[str]] | None = None,
    checkpoint: Callable[[SwapPhase], None] | None = None,
) -> LakeRewrite:
    """Remove *erased* from the lake's event and snapshot files (one swap) and features.

    *columns* are the person columns of each snapshot entity (:func:`person_columns`).
    """
    old: list[str] = []
    new: list[Replacement] = []
    removed, redacted = _rewrite_events(index, erased, masker, run_id, old, new)
    event_files = len(old)
    snapshot_rows, snapshot_files = _rewrite_snapshots(
        index, erased, run_id, old, new, columns or {}
    )
    index.replace_files(old, new, run_id=run_id, at=at, checkpoint=checkpoint)
    index.lake.clear_staging()
    _scrub_set_aside(index, erased)
    return LakeRewrite(
        events_removed=removed,
        events_redacted=redacted,
        event_files=event_files,
        snapshot_rows_removed=snapshot_rows,
        snapshot_files=snapshot_files,
        feature_rows_removed=_rewrite_feature_snapshots(index.lake.root, erased),
    )
