"""The batch step: read events of ingest runs not yet stitched, link, merge, rebuild.

A run goes like this:

1. Events whose ``ingest_run`` is not in ``identity_runs`` are pending. They
   are stitched in chunks of whole days, in date order, at most
   ``identity.batch_events`` events each, one warehouse transaction per chunk
   (on DuckDB); ``identity_days`` records the committed ones, so a crash
   resumes after the last. Links are decided in the order of their first
   event, so chunking changes no decision; it bounds memory.
2. Ibis expressions extract the batch's identifiers (nodes) and the distinct
   pairs seen together (links), for people and for accounts.
3. Links not met before are decided in Python, in order of their first event
   (then link id), by :func:`tenure.identity._partition.decide_batch` — only
   the profiles those links touch are loaded. A link met before keeps its
   decision; only its last_seen and event count move. That is what keeps a
   split link split and a refused link refused.
4. Nodes, links and merges are rewritten; per-identifier traits, memberships
   and graph edges are folded in.
5. In a last transaction the runs go into ``identity_runs`` and
   ``profiles``, ``accounts``, ``account_memberships`` and ``graph_edges`` are
   rebuilt from the per-identifier tables (never from the events again).

Because decisions happen in arrival order, a link refused by a limit in one
run is not revisited when a later run would have allowed it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import ibis
import pyarrow as pa

from tenure.config import IdentifierKind, IdentitySettings
from tenure.identity import _extract
from tenure.identity._build import build_views
from tenure.identity._model import (
    ACCOUNT_SPEC,
    DAYS_TABLE,
    LINKS_SCHEMA,
    NODE_EDGES_TABLE,
    NODE_MEMBERSHIPS_TABLE,
    NODE_TRAITS_TABLE,
    PERSON_SPEC,
    RUNS_TABLE,
    EntitySpec,
    LinkRule,
    LinkStatus,
    short_hash,
)
from tenure.identity._partition import Decision, LinkCandidate, NodeState, decide_batch
from tenure.identity._tables import conform, ensure_tables, rows, scalar, transaction
from tenure.warehouse import EVENT_COLUMNS

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

    from tenure.project import Project
    from tenure.warehouse import Warehouse

__all__ = [
    "StitchReport",
    "account_limits",
    "day_chunks",
    "person_limits",
    "stitch",
    "stitch_warehouse",
]

_BATCH = "_identity_batch"
_EXT = "_identity_batch_external_ids"
_KEYS = "_identity_batch_keys"


@dataclass(frozen=True, slots=True)
class StitchReport:
    """What one stitch run did."""

    runs: tuple[str, ...]  # ingest runs stitched by this call
    events_read: int
    links_new: int  # person and account links met for the first time
    merges: int  # profiles absorbed
    account_merges: int
    refused: dict[str, int] = field(default_factory=dict)  # reason → new links refused
    profiles: int = 0  # profiles after the run
    accounts: int = 0


@dataclass(frozen=True, slots=True)
class _EntityOutcome:
    links_new: int
    merges: int
    refused: Counter[str]

    def __add__(self, other: _EntityOutcome) -> _EntityOutcome:
        return _EntityOutcome(
            self.links_new + other.links_new,
            self.merges + other.merges,
            self.refused + other.refused,
        )


def day_chunks(per_day: list[tuple[dt.date, int]], most: int) -> list[tuple[dt.date, dt.date]]:
    """Consecutive runs of days holding at most *most* events each (a day is never split).

    Stitching chunk by chunk in date order decides links in the same order as
    one pass over everything (links are decided by their first event's time),
    while holding only one chunk's identities in memory.
    """
    chunks: list[tuple[dt.date, dt.date]] = []
    first: dt.date | None = None
    last: dt.date | None = None
    total = 0
    for day, count in sorted(per_day):
        if first is not None and last is not None and total + count > most:
            chunks.append((first, last))
            first, total = None, 0
        if first is None:
            first = day
        last, total = day, total + count
    if first is not None and last is not None:
        chunks.append((first, last))
    return chunks


def person_limits(settings: IdentitySettings) -> dict[str, int]:
    return {kind.value: limit for kind, limit in settings.limits.items()}


def account_limits(settings: IdentitySettings) -> dict[str, int]:
    """An account is one group id; it may carry as many external ids as a person."""
    return {"group_id": 1, "external_id": settings.limits[IdentifierKind.EXTERNAL_ID]}


def stitch(project: Project) -> StitchReport:
    """Stitch the events loaded since the last run, at the project's clock time."""
    return stitch_warehouse(project.warehouse, project.config.identity, at=project.clock())


def stitch_warehouse(
    warehouse: Warehouse, settings: IdentitySettings, *, at: dt.datetime
) -> StitchReport:
    """:func:`stitch` with its parts passed in; *at* stamps the run and new decisions."""
    backend = warehouse.backend
    ensure_tables(warehouse)
    done = warehouse.table(RUNS_TABLE.name).select("ingest_run")
    runs_pending = warehouse.events().anti_join(done, "ingest_run")
    per_run = rows(
        backend, runs_pending.group_by("ingest_run").aggregate(events=runs_pending.count())
    )
    per_run.sort(key=lambda r: str(r["ingest_run"]))
    events_read = sum(int(r["events"]) for r in per_run)
    person = account = _EntityOutcome(0, 0, Counter())
    stitched_days = warehouse.table(DAYS_TABLE.name)
    pending = runs_pending.anti_join(stitched_days, ["ingest_run", "event_date"])
    per_day = rows(backend, pending.group_by("event_date").aggregate(events=pending.count()))
    for first, last in day_chunks(
        [(r["event_date"], int(r["events"])) for r in per_day], settings.batch_events
    ):
        # one transaction per chunk: what a chunk replaced is freed at its commit
        with transaction(backend):
            chunk = pending.filter((pending.event_date >= first) & (pending.event_date <= last))
            covered = backend.to_pyarrow(chunk.select("ingest_run", "event_date").distinct())
            backend.create_table(_BATCH, _narrow(chunk), temp=True, overwrite=True)
            step = _stitch_batch(warehouse, settings, backend.table(_BATCH), at)
            person, account = person + step[0], account + step[1]
            backend.insert(DAYS_TABLE.name, covered.cast(DAYS_TABLE.schema))
            for name in (_KEYS, _EXT, _BATCH):
                backend.drop_table(name, force=True)
    with transaction(backend):
        if per_run:
            backend.insert(
                RUNS_TABLE.name,
                pa.table(
                    {
                        "ingest_run": [r["ingest_run"] for r in per_run],
                        "stitched_at": [at] * len(per_run),
                        "events": [int(r["events"]) for r in per_run],
                    },
                    schema=RUNS_TABLE.schema,
                ),
            )
            left = stitched_days.anti_join(warehouse.table(RUNS_TABLE.name), "ingest_run")
            warehouse.replace_table(DAYS_TABLE.name, left)
        profiles, accounts = build_views(warehouse, settings)
    return StitchReport(
        runs=tuple(str(r["ingest_run"]) for r in per_run),
        events_read=events_read,
        links_new=person.links_new + account.links_new,
        merges=person.merges,
        account_merges=account.merges,
        refused=dict(sorted((person.refused + account.refused).items())),
        profiles=profiles,
        accounts=accounts,
    )


def _narrow(events: ir.Table) -> ir.Table:
    """The batch's events with only the JSON text stitching reads.

    Most events are usage whose properties and context no identity step looks
    at; keeping their text made the batch copy several times the size of the
    identities (10 GB at 11.7M events). Kept: traits of identify and group
    calls, properties of track events that can name a ticket, subscription or
    opportunity (see :func:`tenure.identity._extract.edges`), and context when
    it holds external ids.
    """
    is_track = events.type == "track"
    names_object = (
        events.event.startswith("Ticket ")
        | events.event.startswith("Subscription ")
        | events.properties.contains('"opportunity_id"')
    )
    return events.select(
        *[c for c in EVENT_COLUMNS if c not in ("properties", "traits", "context")],
        properties=(is_track & names_object).ifelse(events.properties, ibis.null("string")),
        traits=events.type.isin(["identify", "group"]).ifelse(events.traits, ibis.null("string")),
        context=events.context.contains("externalIds").ifelse(events.context, ibis.null("string")),
    )


def _stitch_batch(
    warehouse: Warehouse, settings: IdentitySettings, batch: ir.Table, at: dt.datetime
) -> tuple[_EntityOutcome, _EntityOutcome]:
    backend = warehouse.backend
    backend.create_table(_EXT, _extract.external_ids(batch), temp=True, overwrite=True)
    ext = backend.table(_EXT)
    backend.create_table(_KEYS, _extract.event_keys(batch, ext), temp=True, overwrite=True)
    keys = backend.table(_KEYS)

    person_nodes_table = warehouse.table(PERSON_SPEC.nodes_table)
    known_users = ibis.union(
        person_nodes_table.filter(person_nodes_table.kind == "user_id").select("identifier"),
        keys.filter(keys.user_key.notnull()).select(identifier=keys.user_key),
    )
    person = _stitch_entity(
        warehouse,
        PERSON_SPEC,
        _extract.person_nodes(keys, ext, known_users),
        _extract.person_links(keys, ext, known_users),
        limits=person_limits(settings),
        generic=settings.generic_email_local_parts,
        at=at,
    )
    account = _stitch_entity(
        warehouse,
        ACCOUNT_SPEC,
        _extract.account_nodes(keys, ext),
        _extract.account_links(keys, ext),
        limits=account_limits(settings),
        generic=(),
        at=at,
    )
    _fold_traits(warehouse, _extract.traits(keys))
    _fold_spans(
        warehouse,
        NODE_MEMBERSHIPS_TABLE.name,
        NODE_MEMBERSHIPS_TABLE.schema,
        _extract.memberships(keys),
        ["person_identifier", "account_identifier"],
    )
    _fold_spans(
        warehouse,
        NODE_EDGES_TABLE.name,
        NODE_EDGES_TABLE.schema,
        _extract.edges(keys),
        ["entity", "identifier", "object_type", "object_id"],
    )
    return person, account


def _stitch_entity(
    warehouse: Warehouse,
    spec: EntitySpec,
    batch_nodes_expr: ir.Table,
    batch_links_expr: ir.Table,
    *,
    limits: dict[str, int],
    generic: list[str] | tuple[str, ...],
    at: dt.datetime,
) -> _EntityOutcome:
    backend = warehouse.backend
    nodes_name = f"_identity_batch_{spec.entity.value}_nodes"
    links_name = f"_identity_batch_{spec.entity.value}_links"
    backend.create_table(nodes_name, batch_nodes_expr, temp=True, overwrite=True)
    backend.create_table(links_name, batch_links_expr, temp=True, overwrite=True)
    batch_nodes = backend.table(nodes_name)
    batch_links = backend.table(links_name)
    nodes = warehouse.table(spec.nodes_table).rename(owner_id=spec.id_column)
    links = warehouse.table(spec.links_table)
    link_key = ["rule", "left_id", "right_id"]

    fresh: pa.Table = backend.to_pyarrow(
        batch_links.anti_join(links, link_key).order_by(["first_seen", "link_id"])
    )
    candidates = _candidates(fresh)
    states = _load_states(backend, spec, nodes, batch_nodes, candidates)
    outcome = decide_batch(states, candidates, limits=limits, generic_local_parts=generic)
    prior = {s.identifier: s.owner_id for s in states}
    changed = {i: o for i, o in outcome.owners.items() if prior.get(i) != o}
    decisions = [decision for _, decision in outcome.decisions]

    _write_nodes(warehouse, spec, nodes, batch_nodes, changed)
    _write_links(warehouse, spec, links, batch_links, fresh, decisions, at)
    _append_merges(warehouse, spec, fresh, decisions, at)
    for name in (nodes_name, links_name):
        backend.drop_table(name, force=True)
    merges = sum(1 for d in decisions if d.kept is not None)
    refused = Counter(
        d.reason or "unknown" for _, d in outcome.decisions if d.status is LinkStatus.REFUSED
    )
    return _EntityOutcome(len(candidates), merges, refused)


def _candidates(fresh: pa.Table) -> list[LinkCandidate]:
    columns = fresh.select(["link_id", "rule", "left_id", "right_id", "first_seen"]).to_pydict()
    rules = {value: LinkRule(value) for value in set(columns["rule"])}
    return [
        LinkCandidate(link_id, rules[rule], left, right, first_seen)
        for link_id, rule, left, right, first_seen in zip(
            columns["link_id"],
            columns["rule"],
            columns["left_id"],
            columns["right_id"],
            columns["first_seen"],
            strict=True,
        )
    ]


def _load_states(
    backend: BaseBackend,
    spec: EntitySpec,
    nodes: ir.Table,
    batch_nodes: ir.Table,
    candidates: list[LinkCandidate],
) -> list[NodeState]:
    """Every identifier the new links touch, with all other members of their profiles."""
    if not candidates:
        return []
    involved = sorted({c.left for c in candidates} | {c.right for c in candidates})
    wanted = ibis.memtable(pa.table({"identifier": involved}))
    owners = nodes.semi_join(wanted, "identifier").select("owner_id").distinct()
    members = nodes.semi_join(owners, "owner_id")
    seen = batch_nodes.select("identifier", batch_first=batch_nodes.first_seen)
    existing = members.left_join(seen, "identifier")
    existing = existing.select(
        identifier=members.identifier,
        owner_id=members.owner_id,
        first_seen=ibis.least(
            members.first_seen, existing.batch_first.fill_null(members.first_seen)
        ),
    )
    new = batch_nodes.semi_join(wanted, "identifier").anti_join(nodes, "identifier")
    new = new.select(
        "identifier",
        owner_id=ibis.literal(spec.prefix) + _extract.hash16(new.identifier),
        first_seen=new.first_seen,
    )
    found = backend.to_pyarrow(ibis.union(existing, new).order_by("identifier")).to_pydict()
    return [
        NodeState(identifier, owner_id, first_seen)
        for identifier, owner_id, first_seen in zip(
            found["identifier"], found["owner_id"], found["first_seen"], strict=True
        )
    ]


def _write_nodes(
    warehouse: Warehouse,
    spec: EntitySpec,
    nodes: ir.Table,
    batch_nodes: ir.Table,
    changed: dict[str, str],
) -> None:
    old = nodes.select("identifier", "kind", "owner_id", "first_seen", "last_seen", "event_count")
    new = batch_nodes.select(
        "identifier", "kind", owner_id=ibis.null("string"), first_seen=batch_nodes.first_seen,
        last_seen=batch_nodes.last_seen, event_count=batch_nodes.event_count.cast("int64"),
    )  # fmt: skip
    both = ibis.union(old, new)
    folded = both.group_by(["identifier", "kind"]).aggregate(
        owner_id=both.owner_id.max(),
        first_seen=both.first_seen.min(),
        last_seen=both.last_seen.max(),
        event_count=both.event_count.sum(),
    )
    moves = ibis.memtable(
        pa.table(
            {"identifier": list(changed), "new_owner": list(changed.values())},
            schema=pa.schema([("identifier", pa.string()), ("new_owner", pa.string())]),
        )
    )
    joined = folded.left_join(moves, "identifier")
    result = joined.select(
        identifier=folded.identifier,
        kind=folded.kind,
        owner_id=ibis.coalesce(
            joined.new_owner,
            folded.owner_id,
            ibis.literal(spec.prefix) + _extract.hash16(folded.identifier),
        ),
        first_seen=folded.first_seen,
        last_seen=folded.last_seen,
        event_count=folded.event_count,
    ).rename({spec.id_column: "owner_id"})
    warehouse.replace_table(spec.nodes_table, conform(result, spec.nodes_schema()))


def _write_links(
    warehouse: Warehouse,
    spec: EntitySpec,
    links: ir.Table,
    batch_links: ir.Table,
    fresh: pa.Table,
    decisions: list[Decision],
    at: dt.datetime,
) -> None:
    """Known links get the batch's last_seen and events; new ones their decision."""
    seen = batch_links.select(
        "rule", "left_id", "right_id", new_last=batch_links.last_seen, new_events=batch_links.events
    )
    joined = links.left_join(seen, ["rule", "left_id", "right_id"])
    updated = joined.select(
        *[links[c] for c in LINKS_SCHEMA.names if c not in ("last_seen", "events")],
        last_seen=ibis.greatest(links.last_seen, joined.new_last.fill_null(links.last_seen)),
        events=links.events + joined.new_events.fill_null(0),
    )
    decided = pa.table(
        {
            "status": pa.array([d.status.value for d in decisions], pa.string()),
            "reason": pa.array([d.reason for d in decisions], pa.string()),
            "decided_at": pa.array([at] * len(decisions), LINKS_SCHEMA.field("decided_at").type),
        }
    )
    added = pa.Table.from_arrays(
        [
            decided.column(name) if name in decided.column_names else fresh.column(name)
            for name in LINKS_SCHEMA.names
        ],
        schema=LINKS_SCHEMA,
    )
    result = ibis.union(conform(updated, LINKS_SCHEMA), ibis.memtable(added))
    warehouse.replace_table(spec.links_table, result)


def _append_merges(
    warehouse: Warehouse,
    spec: EntitySpec,
    fresh: pa.Table,
    decisions: list[Decision],
    at: dt.datetime,
) -> None:
    """One ``merge`` row per link that merged two profiles, numbered after the last row."""
    picked = [n for n, d in enumerate(decisions) if d.kept is not None]
    if not picked:
        return
    merged = fresh.take(pa.array(picked, pa.int64())).to_pydict()
    last = scalar(warehouse.backend, warehouse.table(spec.merges_table).seq.max())
    start = 0 if last is None else int(last)
    kept = [decisions[n].kept for n in picked]
    absorbed = [decisions[n].absorbed for n in picked]
    records = {
        "seq": list(range(start + 1, start + 1 + len(picked))),
        "merge_id": [
            "m_" + short_hash(f"merge\x1f{link_id}\x1f{gone}")
            for link_id, gone in zip(merged["link_id"], absorbed, strict=True)
        ],
        "action": ["merge"] * len(picked),
        "at": merged["first_seen"],
        "recorded_at": [at] * len(picked),
        "link_id": merged["link_id"],
        "message_id": merged["message_id"],
        spec.kept_column: kept,
        spec.absorbed_column: absorbed,
    }
    warehouse.backend.insert(
        spec.merges_table, pa.Table.from_pydict(records, schema=spec.merges_schema())
    )


def _fold_traits(warehouse: Warehouse, new: ir.Table) -> None:
    old = warehouse.table(NODE_TRAITS_TABLE.name)
    both = ibis.union(old, conform(new, NODE_TRAITS_TABLE.schema))
    latest = _extract.latest_per(both, ["entity", "identifier", "key", "source"])
    warehouse.replace_table(NODE_TRAITS_TABLE.name, conform(latest, NODE_TRAITS_TABLE.schema))


def _fold_spans(
    warehouse: Warehouse, name: str, schema: pa.Schema, new: ir.Table, key: list[str]
) -> None:
    old = warehouse.table(name)
    both = ibis.union(old, conform(new, schema))
    folded = both.group_by(key).aggregate(
        first_seen=both.first_seen.min(), last_seen=both.last_seen.max(), events=both.events.sum()
    )
    warehouse.replace_table(name, conform(folded, schema))
