"""One vectorized pass that checks candidate records and normalizes the valid ones.

Each structural check is a (condition, reason code, reason text) triple; the
first that holds decides a record's fate. The catalog's property rules are
rows of a table joined to the track events that name them, so adding an event
to the catalog adds its checks here without code, and a batch costs the same
to plan however large the catalog grows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import duckdb
import pyarrow as pa

from tenure.collect._reasons import ReasonCode
from tenure.events import CATALOG, PropertyType

__all__ = ["Check", "ValidatedBatch", "catalog_rules", "release", "validate"]

EVENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")


@dataclass(frozen=True, slots=True)
class Check:
    condition: str  # SQL over the candidate columns plus ts, sent, size
    code: ReasonCode
    reason: str  # SQL expression giving the sentence


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    valid: int  # rows in the temp view valid_events
    rejected: pa.Table  # record_number, raw, reason_code, reason


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _path(name: str) -> str:
    return _lit('$."' + name.replace('"', '\\"') + '"')


_JSON_TYPES: Mapping[PropertyType, tuple[str, ...]] = {
    PropertyType.STRING: ("VARCHAR",),
    PropertyType.TIMESTAMP: ("VARCHAR",),
    PropertyType.NUMBER: ("BIGINT", "UBIGINT", "DOUBLE"),
    # a whole DOUBLE (10.0) is an integer too; checked separately
    PropertyType.INTEGER: ("BIGINT", "UBIGINT", "DOUBLE"),
    PropertyType.BOOLEAN: ("BOOLEAN",),
    PropertyType.ARRAY: ("ARRAY",),
    PropertyType.OBJECT: ("OBJECT",),
}

_RULES_SCHEMA = pa.schema(
    [
        ("rule_no", pa.int32()),
        ("event", pa.string()),
        ("path", pa.string()),
        ("required", pa.bool_()),
        ("types", pa.list_(pa.string())),
        ("integer", pa.bool_()),
        ("is_timestamp", pa.bool_()),
        ("minimum", pa.float64()),
        ("maximum", pa.float64()),
        ("choices", pa.list_(pa.string())),
        ("missing_reason", pa.string()),
        ("wrong_prefix", pa.string()),
    ]
)


@cache
def catalog_rules() -> pa.Table:
    """The catalog's property rules as rows, checked by one join (not one SQL arm per rule)."""
    rows: list[dict[str, object]] = []
    for spec in CATALOG.values():
        for prop in spec.properties:
            rows.append(
                {
                    "rule_no": len(rows),
                    "event": spec.name,
                    "path": '$."' + prop.name.replace('"', '\\"') + '"',
                    "required": prop.required,
                    "types": list(_JSON_TYPES[prop.type]),
                    "integer": prop.type is PropertyType.INTEGER,
                    "is_timestamp": prop.type is PropertyType.TIMESTAMP,
                    "minimum": prop.minimum,
                    "maximum": prop.maximum,
                    "choices": list(prop.choices),
                    "missing_reason": f"{spec.name!r} needs property {prop.name!r} "
                    f"({prop.expectation()}) but the event has none",
                    "wrong_prefix": f"property {prop.name!r} of {spec.name!r} "
                    f"must be {prop.expectation()}, got ",
                }
            )
    return pa.Table.from_pylist(rows, schema=_RULES_SCHEMA)


# One row per (record, violated rule); the first rule in catalog order decides.
_CATALOG_FAILURES = f"""
SELECT _row,
       arg_min(CASE WHEN missing THEN '{ReasonCode.MISSING_PROPERTY}'
                    ELSE '{ReasonCode.WRONG_TYPE}' END, rule_no) AS code,
       arg_min(CASE WHEN missing THEN missing_reason
                    ELSE wrong_prefix || coalesce(left(shown, 80), 'null') END, rule_no) AS reason
FROM (
    SELECT c._row, r.*, kind, shown,
           r.required AND (kind IS NULL OR kind = 'NULL') AS missing,
           kind IS NOT NULL AND kind <> 'NULL' AND (
               NOT list_contains(r.types, kind)
               OR (r.integer AND kind = 'DOUBLE' AND num <> floor(num))
               OR (r.is_timestamp AND TRY_CAST(text AS TIMESTAMPTZ) IS NULL)
               OR num < r.minimum OR num > r.maximum
               OR (len(r.choices) > 0 AND NOT list_contains(r.choices, text))
           ) AS wrong
    FROM (SELECT _row, event, properties FROM checked
          WHERE base_code IS NULL AND type = 'track') c
    JOIN catalog_rules r ON c.event = r.event,
    LATERAL (SELECT json_type(c.properties, r.path) AS kind,
                    json_extract_string(c.properties, r.path) AS text,
                    json_extract(c.properties, r.path)::VARCHAR AS shown,
                    TRY_CAST(json_extract_string(c.properties, r.path) AS DOUBLE) AS num)
)
WHERE missing OR wrong
GROUP BY _row
"""


def _checks(now: dt.datetime, max_future: dt.timedelta, max_bytes: int) -> list[Check]:
    limit = (now + max_future).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
    types = ", ".join(_lit(t) for t in EVENT_TYPES)
    no_person = "user_id IS NULL AND anonymous_id IS NULL AND email IS NULL AND NOT has_external"
    return [
        Check("reader_error_code IS NOT NULL", ReasonCode.MALFORMED_JSON, "reader_error"),
        Check(
            f"size > {max_bytes}",
            ReasonCode.TOO_LARGE,
            f"'record is ' || size || ' bytes; an event may be at most {max_bytes} bytes'",
        ),
        Check(
            f"type IS NULL OR type NOT IN ({types})",
            ReasonCode.UNKNOWN_TYPE,
            "CASE WHEN type IS NULL THEN 'no type; expected one of "
            + ", ".join(EVENT_TYPES)
            + "' ELSE 'unknown type ' || chr(39) || type || chr(39) || '; expected one of "
            + ", ".join(EVENT_TYPES)
            + "' END",
        ),
        Check(
            "type = 'group' AND group_id IS NULL",
            ReasonCode.MISSING_IDENTITY,
            _lit("group call without groupId"),
        ),
        Check(
            "type = 'alias' AND (previous_id IS NULL OR user_id IS NULL)",
            ReasonCode.MISSING_IDENTITY,
            _lit("alias call needs both previousId and userId"),
        ),
        Check(
            f"type <> 'group' AND {no_person}",
            ReasonCode.MISSING_IDENTITY,
            _lit("no userId, anonymousId, email or external id: the event cannot be attributed"),
        ),
        Check(
            "type = 'track' AND event IS NULL",
            ReasonCode.MISSING_EVENT_NAME,
            _lit("track call without an event name"),
        ),
        Check(
            "timestamp IS NULL",
            ReasonCode.BAD_TIMESTAMP,
            _lit("no timestamp"),
        ),
        Check(
            "ts IS NULL",
            ReasonCode.BAD_TIMESTAMP,
            "'timestamp ' || chr(39) || left(timestamp, 80) || chr(39)"
            " || ' is not an ISO 8601 time'",
        ),
        Check(
            f"ts > TIMESTAMPTZ '{limit}'",
            ReasonCode.FUTURE_TIMESTAMP,
            f"'timestamp ' || strftime(ts, '%Y-%m-%dT%H:%M:%SZ') || ' is more than "
            f"{max_future.total_seconds() / 3600:g} hours after the ingest time "
            f"{now.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}'",
        ),
        *[
            Check(
                # CASE, not OR: DuckDB may evaluate either side of an OR first,
                # and json_type raises on text that is not JSON
                f"{field} IS NOT NULL AND CASE WHEN json_valid({field}) "
                f"THEN json_type({field}) <> 'OBJECT' ELSE true END",
                ReasonCode.WRONG_TYPE,
                f"'{field} must be a JSON object, got ' || left({field}, 80)",
            )
            for field in ("properties", "traits", "context")
        ],
    ]


def _case(checks: list[Check], attr: str) -> str:
    arms = " ".join(
        f"WHEN {c.condition} THEN "
        + (
            "reader_error_code"
            if attr == "code" and c.code is ReasonCode.MALFORMED_JSON
            else (_lit(c.code.value) if attr == "code" else c.reason)
        )
        for c in checks
    )
    return f"CASE {arms} END"


# Normalization: blank strings are missing, emails are trimmed and lower-cased.
_PREPARED = """
SELECT
    record_number, raw, reader_error_code, reader_error,
    nullif(trim(message_id), '') AS message_id,
    nullif(trim(type), '') AS type,
    nullif(trim(event), '') AS event,
    nullif(trim(user_id), '') AS user_id,
    nullif(trim(anonymous_id), '') AS anonymous_id,
    nullif(trim(group_id), '') AS group_id,
    nullif(trim(previous_id), '') AS previous_id,
    CASE WHEN contains(email, '@') THEN lower(trim(email)) END AS email,
    timestamp, sent_at, properties, traits, context, natural_key,
    TRY_CAST(timestamp AS TIMESTAMPTZ) AS ts,
    TRY_CAST(sent_at AS TIMESTAMPTZ) AS sent,
    coalesce(strlen(raw), strlen(coalesce(properties, '')) + strlen(coalesce(traits, ''))
        + strlen(coalesce(context, '')) + 200) AS size,
    CASE WHEN context LIKE '%"externalIds"%' AND json_valid(context)
         THEN coalesce(json_array_length(context, '$.externalIds') > 0, false)
         ELSE false END AS has_external
FROM candidates
"""

_RAW_REBUILT = """coalesce(raw, json_object(
    'messageId', message_id, 'type', type, 'event', event, 'userId', user_id,
    'anonymousId', anonymous_id, 'groupId', group_id, 'previousId', previous_id,
    'timestamp', timestamp, 'sentAt', sent_at,
    'properties', CASE WHEN json_valid(properties) THEN properties::JSON
                       ELSE to_json(properties) END,
    'traits', CASE WHEN json_valid(traits) THEN traits::JSON ELSE to_json(traits) END,
    'context', CASE WHEN json_valid(context) THEN context::JSON
                    ELSE to_json(context) END)::VARCHAR)"""


def validate(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str,
    run_id: str,
    now: dt.datetime,
    max_future: dt.timedelta,
    max_bytes: int,
    numbered: bool = False,
) -> ValidatedBatch:
    """Check the ``candidates`` table of *con*.

    *numbered* says that the candidates' record numbers are distinct and in row
    order (one record per row, as the Parquet reader gives them), so a record's
    number is its position; otherwise positions come from sorting by number.

    Valid records, normalized to the lake's event columns, are left in the temp
    view ``valid_events`` (with ``_row``, the candidate's position) until
    :func:`release`; rejected ones are returned with their reasons.
    """
    checks = _checks(now, max_future, max_bytes)
    # the sort behind row_number() is about a third of a Parquet batch's checking
    position = "record_number" if numbered else "row_number() OVER (ORDER BY record_number)"
    con.register("catalog_rules", catalog_rules())
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE checked AS
            SELECT *, {_case(checks, "code")} AS base_code
            FROM (SELECT *, {position} AS _row FROM ({_PREPARED}))"""
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE catalog_failures AS {_CATALOG_FAILURES}")
    finally:
        con.unregister("catalog_rules")
    # the reason sentence is built for rejected records only
    rejected = con.execute(
        f"""SELECT record_number, {_RAW_REBUILT} AS raw,
               coalesce(base_code, f.code) AS reason_code,
               coalesce(CASE WHEN base_code IS NOT NULL THEN {_case(checks, "reason")} END,
                        f.reason, base_code) AS reason
        FROM checked LEFT JOIN catalog_failures f USING (_row)
        WHERE base_code IS NOT NULL OR f.code IS NOT NULL
        ORDER BY _row"""
    ).to_arrow_table()
    # A record without a messageId gets a deterministic one: from its natural key
    # and time when the source has one, else from its exact content.
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW valid_events AS SELECT
            _row,
            coalesce(message_id, 'tn-' || md5({_lit(source)} || '|' ||
                coalesce(natural_key || '|' || strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ'), raw,
                         {_RAW_REBUILT}))) AS message_id,
            type, event, user_id, anonymous_id, group_id, previous_id, email,
            ts AS "timestamp", sent AS sent_at,
            TIMESTAMPTZ '{now.astimezone(dt.UTC).isoformat()}' AS received_at,
            properties, traits, context, {_lit(source)} AS source, {_lit(run_id)} AS ingest_run
        FROM checked ANTI JOIN catalog_failures USING (_row)
        WHERE base_code IS NULL"""
    )
    row = con.execute(
        "SELECT (SELECT count(*) FROM checked WHERE base_code IS NULL)"
        " - (SELECT count(*) FROM catalog_failures)"
    ).fetchone()
    return ValidatedBatch(valid=int(row[0]) if row else 0, rejected=rejected)


def release(con: duckdb.DuckDBPyConnection) -> None:
    """Drop what :func:`validate` left behind, once ``valid_events`` has been used."""
    con.execute("DROP VIEW IF EXISTS valid_events")
    con.execute("DROP TABLE IF EXISTS checked")
    con.execute("DROP TABLE IF EXISTS catalog_failures")
    # a reader's view materialized by suppression (tenure.collect._suppress)
    con.execute("DROP TABLE IF EXISTS _suppression_base")
