"""Undoing a wrong merge: disable one link and re-partition the profile it joined.

Only the profile holding the link is re-partitioned, from its remaining
active links; every other profile is untouched. The part holding the
identifier the profile id was made from keeps the id; every other part gets
``p_`` + hash of its anchor (its earliest identifier, see ``_partition``),
which brings back the id a part had before it was absorbed. The merges
table keeps the original merge and gains one ``split`` row per part split
off, and the operational store's audit log gets an ``identity.split`` entry.

The split link keeps status ``split`` for good: later runs that see the same
two identifiers under the same rule only update its last_seen, so they never
merge through it again. A *different* link between the same identifiers
(another rule, e.g. an alias call for an anonymous id first linked by a
shared device) is a new link and merges them again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ibis
import pyarrow as pa

from tenure.config import IdentitySettings
from tenure.errors import IdentityError, NotFoundError
from tenure.identity._build import build_views
from tenure.identity._model import (
    ACCOUNT_SPEC,
    LINKS_SCHEMA,
    PERSON_SPEC,
    EntitySpec,
    LinkStatus,
    anchor_key,
    owner_id_for,
    short_hash,
)
from tenure.identity._partition import components
from tenure.identity._tables import conform, ensure_tables, rows, scalar, transaction
from tenure.store import append_audit

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tenure.project import Project
    from tenure.warehouse import Warehouse

__all__ = ["SPLIT_ACTION", "SplitResult", "split_link", "split_link_in"]

#: The audit-log action of a split.
SPLIT_ACTION = "identity.split"


@dataclass(frozen=True, slots=True)
class SplitResult:
    """A split link and the profiles (or accounts) before and after."""

    link_id: str
    entity: str  # person | account
    profile_before: str
    profiles_after: tuple[str, ...]  # the kept id first; one id if the link was redundant
    reason: str


def split_link(project: Project, link_id: str, *, actor: str, reason: str) -> SplitResult:
    """Disable *link_id* and re-partition the profile it joined, at the project's clock."""
    return split_link_in(
        project.warehouse,
        project.store,
        project.config.identity,
        link_id,
        actor=actor,
        reason=reason,
        at=project.clock(),
    )


def split_link_in(
    warehouse: Warehouse,
    store: Engine,
    settings: IdentitySettings,
    link_id: str,
    *,
    actor: str,
    reason: str,
    at: dt.datetime,
) -> SplitResult:
    """:func:`split_link` with its parts passed in."""
    if not reason.strip():
        raise IdentityError("a split needs a reason", hint="say why the link is wrong: --reason …")
    ensure_tables(warehouse)
    spec, link = _find_link(warehouse, link_id)
    if link["status"] != LinkStatus.ACTIVE.value:
        why = (
            "it was refused, so it never merged anything"
            if link["status"] == "refused"
            else ("it is already split")
        )
        raise IdentityError(
            f"link {link_id} cannot be split: {why} (status {link['status']!r})",
            hint="only active links can be split; see the identity links table for their status",
        )
    backend = warehouse.backend
    nodes = warehouse.table(spec.nodes_table).rename(owner_id=spec.id_column)
    before = str(rows(backend, nodes.filter(nodes.identifier == link["left_id"]))[0]["owner_id"])
    members = rows(
        backend, nodes.filter(nodes.owner_id == before).select("identifier", "first_seen")
    )
    first_seen = {str(r["identifier"]): r["first_seen"] for r in members}
    member_table = ibis.memtable(pa.table({"identifier": sorted(first_seen)}))
    links = warehouse.table(spec.links_table)
    active = links.filter((links.status == LinkStatus.ACTIVE.value) & (links.link_id != link_id))
    inside = active.semi_join(member_table, active.left_id == member_table.identifier)
    edges = [(str(r["left_id"]), str(r["right_id"])) for r in rows(backend, inside)]
    parts = components(first_seen, edges)
    owners = _name_parts(spec, before, parts, first_seen)

    with store.begin() as connection, transaction(backend):
        _write_owners(warehouse, spec, owners)
        _mark_split(warehouse, spec, link_id, reason, at)
        after = tuple(
            dict.fromkeys(owners[min(part)] for part in _kept_first(parts, owners, before))
        )
        _append_split_rows(warehouse, spec, link, before, after, at)
        build_views(warehouse, settings)
        append_audit(
            connection,
            at=at,
            actor=actor,
            action=SPLIT_ACTION,
            target=link_id,
            detail={
                "entity": spec.entity.value,
                "link_id": link_id,
                "rule": link["rule"],
                "left_id": link["left_id"],
                "right_id": link["right_id"],
                "profile_before": before,
                "profiles_after": list(after),
                "reason": reason,
            },
        )
    return SplitResult(link_id, spec.entity.value, before, after, reason)


def _find_link(warehouse: Warehouse, link_id: str) -> tuple[EntitySpec, dict[str, object]]:
    for spec in (PERSON_SPEC, ACCOUNT_SPEC):
        links = warehouse.table(spec.links_table)
        found = rows(warehouse.backend, links.filter(links.link_id == link_id))
        if found:
            return spec, found[0]
    raise NotFoundError(
        f"no identity link {link_id!r}",
        hint="link ids start with l_; look them up in the identity_links or account_links table",
    )


def _name_parts(
    spec: EntitySpec,
    before: str,
    parts: list[frozenset[str]],
    first_seen: dict[str, dt.datetime],
) -> dict[str, str]:
    """identifier → owner id after the split."""
    anchor = next(
        (i for part in parts for i in part if owner_id_for(spec.prefix, i) == before), None
    )
    if anchor is None:  # the anchor left in an earlier split: the oldest part keeps the id
        anchor = min(first_seen, key=lambda i: anchor_key(i, first_seen[i]))
    owners: dict[str, str] = {}
    for part in parts:
        if anchor in part:
            owner = before
        else:
            earliest = min(part, key=lambda i: anchor_key(i, first_seen[i]))
            owner = owner_id_for(spec.prefix, earliest)
        owners.update(dict.fromkeys(part, owner))
    return owners


def _kept_first(
    parts: list[frozenset[str]], owners: dict[str, str], before: str
) -> list[frozenset[str]]:
    return sorted(parts, key=lambda part: (owners[min(part)] != before, owners[min(part)]))


def _write_owners(warehouse: Warehouse, spec: EntitySpec, owners: dict[str, str]) -> None:
    nodes = warehouse.table(spec.nodes_table).rename(owner_id=spec.id_column)
    moves = ibis.memtable(
        pa.table({"identifier": list(owners), "new_owner": list(owners.values())})
    )
    joined = nodes.left_join(moves, "identifier")
    result = joined.select(
        identifier=nodes.identifier,
        kind=nodes.kind,
        owner_id=ibis.coalesce(joined.new_owner, nodes.owner_id),
        first_seen=nodes.first_seen,
        last_seen=nodes.last_seen,
        event_count=nodes.event_count,
    ).rename({spec.id_column: "owner_id"})
    warehouse.replace_table(spec.nodes_table, conform(result, spec.nodes_schema()))


def _mark_split(
    warehouse: Warehouse, spec: EntitySpec, link_id: str, reason: str, at: dt.datetime
) -> None:
    links = warehouse.table(spec.links_table)
    hit = links.link_id == link_id
    result = links.mutate(
        status=hit.ifelse(LinkStatus.SPLIT.value, links.status),
        reason=hit.ifelse(reason, links.reason),
        decided_at=hit.ifelse(ibis.literal(at), links.decided_at),
    )
    warehouse.replace_table(spec.links_table, conform(result, LINKS_SCHEMA))


def _append_split_rows(
    warehouse: Warehouse,
    spec: EntitySpec,
    link: dict[str, object],
    before: str,
    after: tuple[str, ...],
    at: dt.datetime,
) -> None:
    split_off = [owner for owner in after if owner != before]
    if not split_off:
        return
    merges = warehouse.table(spec.merges_table)
    last = scalar(warehouse.backend, merges.seq.max())
    start = 0 if last is None else int(last)
    link_id = str(link["link_id"])
    records = [
        {
            "seq": start + offset,
            "merge_id": "s_" + short_hash(f"split\x1f{link_id}\x1f{owner}"),
            "action": "split",
            "at": at,
            "recorded_at": at,
            "link_id": link_id,
            "message_id": link["message_id"],
            spec.kept_column: before,
            spec.absorbed_column: owner,
        }
        for offset, owner in enumerate(split_off, start=1)
    ]
    warehouse.backend.insert(
        spec.merges_table, pa.Table.from_pylist(records, schema=spec.merges_schema())
    )
