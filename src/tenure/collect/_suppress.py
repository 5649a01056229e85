"""Suppression: new records of erased people are dropped before validation.

After an erasure (:mod:`tenure.govern.erasure`) the store lists a keyed hash
of each of the person's typed identifiers. Every batch a reader puts in the
``candidates`` table is checked against that list before anything else sees
it: a record carrying such an identifier — as userId, anonymousId,
previousId, email, or a person's external id in ``context.externalIds`` — is
deleted there, so it is neither loaded nor quarantined with its personal data
in the raw text, and counted as suppressed.

Only the batch's distinct identifiers are hashed (in DuckDB), so the cost is
in proportion to identifiers, not events, and nothing at all is done while
the list is empty. A record too broken to name anyone (malformed JSON) cannot
be attributed and still goes to the quarantine; the batch erasure step clears
quarantined records that name an erased person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tenure.govern.secrets import project_secret
from tenure.store._erasures import ErasureKey, suppression_hashes

if TYPE_CHECKING:
    from tenure.project import Project

__all__ = ["Suppressed", "drop_suppressed", "erasure_key", "person_identifiers_sql"]


def erasure_key(project: Project) -> ErasureKey:
    """The key of the suppression list's hashes (``ingest.erasure_secret_env``, else a key file)."""
    return ErasureKey(
        project_secret(project.root, "erasure", project.config.ingest.erasure_secret_env)
    )


def _typed(kind: str, column: str) -> str:
    return f"'{kind}:' || nullif(trim({column}), '')"


def person_identifiers_sql(table: str, row: str) -> str:
    """(row, typed) for every person identifier a record of *table* carries, as stitching types
    them: userId, anonymousId, email, previousId (as either a user or an anonymous id) and
    ``external_id:<type>:<id>`` of ``context.externalIds`` outside the accounts collection."""
    return f"""
    SELECT {row} AS _row, {_typed("user_id", "user_id")} AS typed FROM {table}
    UNION ALL SELECT {row}, {_typed("anonymous_id", "anonymous_id")} FROM {table}
    UNION ALL SELECT {row}, {_typed("user_id", "previous_id")} FROM {table}
    UNION ALL SELECT {row}, {_typed("anonymous_id", "previous_id")} FROM {table}
    UNION ALL SELECT {row}, CASE WHEN contains(email, '@') THEN 'email:' || lower(trim(email)) END
        FROM {table}
    UNION ALL SELECT _row, 'external_id:' || ext_type || ':' || ext_id FROM (
        SELECT {row} AS _row,
               nullif(trim(json_extract_string(e, '$.type')), '') AS ext_type,
               nullif(trim(json_extract_string(e, '$.id')), '') AS ext_id,
               lower(coalesce(json_extract_string(e, '$.collection'), 'users')) AS collection
        FROM (SELECT {row}, unnest(json_extract(context, '$.externalIds[*]')) AS e
              FROM {table}
              WHERE context LIKE '%externalIds%' AND json_valid(context))
    ) WHERE collection <> 'accounts'
    """


#: Where a reader's view of candidates is materialized so that rows can be deleted;
#: :func:`tenure.collect._validate.release` drops it with the batch.
SUPPRESSION_BASE = "_suppression_base"


def _deletable(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """*table*, or the table behind it when it is a view (the Parquet reader's candidates
    read straight from Arrow): the rows are materialized once and the view re-pointed."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND temporary", [table]
    ).fetchone()
    if not row or not row[0]:
        return table
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SUPPRESSION_BASE} AS SELECT * FROM {table}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * FROM {SUPPRESSION_BASE}")
    return SUPPRESSION_BASE


@dataclass(frozen=True, slots=True)
class Suppressed:
    """Records of a batch dropped because they carry an erased person's identifier."""

    count: int
    #: their record numbers (an export row's snapshot row is dropped with its events)
    record_numbers: frozenset[int]

    def keep(self, table: pa.Table) -> pa.Table:
        """*table* (with ``record_number``) without the suppressed records' rows."""
        if not self.record_numbers:
            return table
        dropped = pa.array(sorted(self.record_numbers), pa.int64())
        return table.filter(pc.invert(pc.is_in(table["record_number"], value_set=dropped)))


NOTHING = Suppressed(0, frozenset())


def drop_suppressed(project: Project, table: str = "candidates") -> Suppressed:
    """Delete the records of *table* (the reader's ``candidates``) that carry a suppressed
    identifier, in the lake index's connection; what was dropped."""
    with project.store.connect() as connection:
        hashes = suppression_hashes(connection)
    if not hashes:
        return NOTHING
    con = project.index.con
    table = _deletable(con, table)
    con.register("_suppression_list", pa.table({"hash": pa.array(hashes, pa.string())}))
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _suppressed AS
            WITH ids AS ({person_identifiers_sql(table, "rowid")}),
            hits AS (
                SELECT typed FROM (SELECT DISTINCT typed FROM ids WHERE typed IS NOT NULL)
                WHERE sha256(? || chr(31) || typed) IN (SELECT hash FROM _suppression_list)
            )
            SELECT DISTINCT _row FROM ids SEMI JOIN hits USING (typed)""",
            [erasure_key(project).text],
        )
    finally:
        con.unregister("_suppression_list")
    numbers = con.execute(
        f"SELECT DISTINCT record_number FROM {table} WHERE rowid IN (SELECT _row FROM _suppressed)"
    ).fetchall()
    row = con.execute(
        f"DELETE FROM {table} WHERE rowid IN (SELECT _row FROM _suppressed)"
    ).fetchone()
    con.execute("DROP TABLE _suppressed")
    count = int(row[0]) if row else 0
    return Suppressed(count, frozenset(int(n) for (n,) in numbers)) if count else NOTHING
