"""Removing erased people from the warehouse's derived tables and the store's leftovers.

Warehouse: identity's per-identifier tables lose the person's identifiers,
links, merges, traits, memberships and graph edges, and ``profiles``,
``accounts``, ``account_memberships`` and ``graph_edges`` are rebuilt from
them (:func:`tenure.identity._build.build_views`, which never rereads the
lake). Any other table with a ``profile_id`` or ``entity_id`` column loses the
person's profiles (``features_person`` …), and ``event_sentiment`` keeps only
events still in the lake. Everything is an Ibis expression, in one transaction
on DuckDB. Stitching is incremental by ingest run, so the next run does not
bring the person back: their events are no longer in the lake to be read.

Store: quarantined records and already-loaded inbox rows (kept for the dedupe
window) that name the person are deleted; other people's inbox rows
mentioning their email are pseudonymized, as :func:`~tenure.govern.erasure.erase`
does for rows not yet loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis
import orjson
import pyarrow as pa
from sqlalchemy import Connection, delete, or_, update

from tenure.config import IdentitySettings
from tenure.features import SENTIMENT_TABLE
from tenure.govern._erased import Erased
from tenure.govern.erasure import _inbox_events, _is_theirs, _mentioning, _redact_event
from tenure.govern.pii import Pseudonymizer
from tenure.identity._build import build_views
from tenure.identity._model import (
    NODE_EDGES_TABLE,
    NODE_MEMBERSHIPS_TABLE,
    NODE_TRAITS_TABLE,
    PERSON_SPEC,
    RUNS_TABLE,
    Entity,
)
from tenure.identity._tables import transaction
from tenure.store._tables import inbox, quarantine

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tenure.warehouse import Warehouse

__all__ = ["erase_store_leftovers", "erase_warehouse"]

#: Rebuilt by build_views from the per-identifier tables.
_VIEWS = ("profiles", "accounts", "account_memberships", "graph_edges")
_PROFILE_COLUMNS = ("profile_id", "entity_id")
#: Tables that are not the warehouse's own: Ibis's in-memory tables, steps' temporary ones.
_SCRATCH = ("ibis_", "_")


def _person_rows(warehouse: Warehouse, name: str, erased: Erased) -> ir.BooleanValue | None:
    """Which rows of table *name* are the erased people's, or None if it has none to lose."""
    table = warehouse.table(name)
    ids = ibis.memtable(erased.typed_column()).identifier
    profiles = ibis.memtable(pa.table({"p": pa.array(sorted(erased.profiles), pa.string())})).p
    person = ibis.literal(Entity.PERSON.value)
    if name == PERSON_SPEC.nodes_table:
        return table.identifier.isin(ids) | table[PERSON_SPEC.id_column].isin(profiles)
    if name == PERSON_SPEC.links_table:
        return table.left_id.isin(ids) | table.right_id.isin(ids)
    if name == PERSON_SPEC.merges_table:
        return table[PERSON_SPEC.kept_column].isin(profiles) | table[
            PERSON_SPEC.absorbed_column
        ].isin(profiles)
    if name == NODE_TRAITS_TABLE.name:
        theirs = (table.entity == person) & table.identifier.isin(ids)
        pattern = erased.email_pattern()
        if pattern is not None:  # an account trait holding their address
            theirs = theirs | table.value.lower().re_search(pattern).fill_null(False)
        return theirs
    if name == NODE_MEMBERSHIPS_TABLE.name:
        return table.person_identifier.isin(ids)
    if name == NODE_EDGES_TABLE.name:
        return (table.entity == person) & table.identifier.isin(ids)
    columns = [c for c in _PROFILE_COLUMNS if c in table.columns]
    if not columns or not erased.profiles:
        return None
    found = table[columns[0]].isin(profiles)
    for column in columns[1:]:
        found = found | table[column].isin(profiles)
    return found


def _count(warehouse: Warehouse, name: str) -> int:
    return int(warehouse.backend.execute(warehouse.table(name).count()))


def erase_warehouse(
    warehouse: Warehouse, erased: Erased, settings: IdentitySettings
) -> dict[str, int]:
    """Remove *erased* from the warehouse; rows removed per table."""
    removed: dict[str, int] = {}
    names = set(warehouse.backend.list_tables())
    with transaction(warehouse.backend):
        for name in sorted(names - set(_VIEWS)):
            if name == SENTIMENT_TABLE or name.startswith(_SCRATCH):
                continue
            theirs = _person_rows(warehouse, name, erased)
            if theirs is None:
                continue
            gone = int(warehouse.backend.execute(warehouse.table(name).filter(theirs).count()))
            if gone:
                table = warehouse.table(name)
                warehouse.replace_table(name, table.filter(~theirs))
                removed[name] = gone
        if SENTIMENT_TABLE in names:
            scores = warehouse.table(SENTIMENT_TABLE)
            before = _count(warehouse, SENTIMENT_TABLE)
            kept = scores.semi_join(warehouse.events().select("message_id"), "message_id")
            warehouse.replace_table(SENTIMENT_TABLE, kept)
            if gone := before - _count(warehouse, SENTIMENT_TABLE):
                removed[SENTIMENT_TABLE] = gone
        if RUNS_TABLE.name in names:
            views = {v: _count(warehouse, v) for v in _VIEWS if v in names}
            build_views(warehouse, settings)
            for view, count in views.items():
                if gone := count - _count(warehouse, view):
                    removed[view] = gone
    return removed


def erase_store_leftovers(
    connection: Connection, erased: Erased, masker: Pseudonymizer
) -> tuple[int, int]:
    """Quarantined records naming the person deleted; loaded inbox rows deleted or
    pseudonymized. Returns (quarantined records deleted, inbox rows changed)."""
    # user and anonymous ids, not external ids: a short record id (5151) is too common
    # in other records' JSON to say whose a record is
    exact = set(erased.cell_values(external=False)) - set(erased.emails)
    emails = set(erased.emails)
    deleted = 0
    if quarantined := _mentioning(quarantine.c.raw, exact, emails):
        deleted = int(connection.execute(delete(quarantine).where(or_(*quarantined))).rowcount or 0)
    changed = 0
    for row_id, event in list(_inbox_events(connection, exact, emails, loaded=True)):
        if _is_theirs(event, exact, emails):
            connection.execute(delete(inbox).where(inbox.c.id == row_id))
            changed += 1
            continue
        redacted = _redact_event(event, exact, emails, masker)
        if redacted != event:
            connection.execute(
                update(inbox)
                .where(inbox.c.id == row_id)
                .values(payload=orjson.dumps(redacted).decode())
            )
            changed += 1
    return deleted, changed
