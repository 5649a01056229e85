"""Rebuild profiles, accounts, memberships and graph edges from the identity tables.

Everything here is Ibis set logic over the per-identifier tables, so a
rebuild costs in proportion to identifiers, not events, and a split or merge
never rereads the lake.

Trait rule: for each trait key, the value from the source listed earliest in
``identity.source_precedence`` wins; sources not listed come after all listed
ones; within one source the latest timestamp wins (then the larger
message_id, so the result never depends on row order).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis
import pyarrow as pa

from tenure.config import IdentitySettings
from tenure.identity._model import (
    ACCOUNT_SPEC,
    ACCOUNTS_TABLE,
    EDGES_TABLE,
    MEMBERSHIPS_TABLE,
    NODE_EDGES_TABLE,
    NODE_MEMBERSHIPS_TABLE,
    NODE_TRAITS_TABLE,
    PERSON_SPEC,
    PROFILES_TABLE,
    Entity,
    EntitySpec,
)
from tenure.identity._tables import conform, scalar

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tenure.warehouse import Warehouse

__all__ = ["build_views"]

_EMPTY_LIST = ibis.literal([], type="array<string>")


def build_views(warehouse: Warehouse, settings: IdentitySettings) -> tuple[int, int]:
    """Rewrite the four published tables; returns the number of profiles and accounts."""
    people = _owned(warehouse, PERSON_SPEC)
    accounts = _owned(warehouse, ACCOUNT_SPEC)
    memberships = _memberships(warehouse, people, accounts)
    warehouse.replace_table(MEMBERSHIPS_TABLE.name, conform(memberships, MEMBERSHIPS_TABLE.schema))
    memberships = warehouse.table(MEMBERSHIPS_TABLE.name)

    person_traits = _best_traits(warehouse, Entity.PERSON, people, settings)
    warehouse.replace_table(
        PROFILES_TABLE.name,
        conform(_profiles(people, person_traits, memberships), PROFILES_TABLE.schema),
    )
    account_traits = _best_traits(warehouse, Entity.ACCOUNT, accounts, settings)
    warehouse.replace_table(
        ACCOUNTS_TABLE.name,
        conform(_accounts(accounts, account_traits, memberships), ACCOUNTS_TABLE.schema),
    )
    warehouse.replace_table(
        EDGES_TABLE.name,
        conform(_graph_edges(warehouse, people, accounts, memberships), EDGES_TABLE.schema),
    )
    backend = warehouse.backend
    return (
        int(scalar(backend, warehouse.table(PROFILES_TABLE.name).count())),
        int(scalar(backend, warehouse.table(ACCOUNTS_TABLE.name).count())),
    )


def _owned(warehouse: Warehouse, spec: EntitySpec) -> ir.Table:
    """Nodes with the owner column called ``owner_id`` and the bare value split off."""
    nodes = warehouse.table(spec.nodes_table).rename(owner_id=spec.id_column)
    return nodes.mutate(value=nodes.identifier.substr(nodes.kind.length() + 1))


def _best_traits(
    warehouse: Warehouse, entity: Entity, owned: ir.Table, settings: IdentitySettings
) -> ir.Table:
    """owner_id, key, value (JSON text): the winning value per owner and trait key."""
    values = warehouse.table(NODE_TRAITS_TABLE.name)
    values = values.filter(values.entity == entity.value)
    with_owner = values.join(owned.select("identifier", "owner_id"), "identifier")
    order = settings.source_precedence
    ranks = ibis.memtable(
        pa.table(
            {"rank_source": order, "rank": list(range(len(order)))},
            schema=pa.schema([("rank_source", pa.string()), ("rank", pa.int64())]),
        )
    )
    ranked = with_owner.left_join(ranks, with_owner.source == ranks.rank_source)
    ranked = ranked.select(
        "owner_id", "key", "value", "timestamp", "message_id",
        rank=ranked["rank"].fill_null(len(order)),
    )  # fmt: skip
    position = ibis.row_number().over(
        group_by=["owner_id", "key"],
        order_by=[ranked["rank"], ibis.desc(ranked.timestamp), ibis.desc(ranked.message_id)],
    )
    best = ranked.mutate(_n=position)
    return best.filter(best._n == 0).select("owner_id", "key", "value")


def _json_objects(best: ir.Table) -> ir.Table:
    """owner_id, traits: one JSON object per owner, keys in sorted order."""
    key = best.key.replace("\\", "\\\\").replace('"', '\\"')
    member = ibis.literal('"') + key + '":' + best.value
    return best.group_by("owner_id").aggregate(
        traits=ibis.literal("{") + member.group_concat(",", order_by=best.key) + "}"
    )


def _collect(owned: ir.Table, kind: str) -> ir.ArrayValue:
    return owned.value.collect(where=owned.kind == kind, order_by=owned.value)


def _profiles(people: ir.Table, best: ir.Table, memberships: ir.Table) -> ir.Table:
    grouped = people.group_by("owner_id").aggregate(
        first_seen=people.first_seen.min(),
        last_seen=people.last_seen.max(),
        event_count=people.event_count.sum(),
        user_ids=_collect(people, "user_id"),
        emails=_collect(people, "email"),
        anonymous_ids=_collect(people, "anonymous_id"),
        external_ids=_collect(people, "external_id"),
    )
    traits = _json_objects(best)
    current = memberships.filter(memberships.is_current).select(
        cur_profile="profile_id", cur_account="account_id"
    )
    joined = grouped.left_join(traits, "owner_id").left_join(
        current, grouped.owner_id == current.cur_profile
    )
    return joined.select(
        profile_id=grouped.owner_id,
        first_seen=grouped.first_seen,
        last_seen=grouped.last_seen,
        event_count=grouped.event_count,
        user_ids=ibis.coalesce(grouped.user_ids, _EMPTY_LIST),
        emails=ibis.coalesce(grouped.emails, _EMPTY_LIST),
        anonymous_ids=ibis.coalesce(grouped.anonymous_ids, _EMPTY_LIST),
        external_ids=ibis.coalesce(grouped.external_ids, _EMPTY_LIST),
        traits=joined.traits.fill_null("{}"),
        account_id=joined.cur_account,
    ).order_by("profile_id")


def _accounts(accounts: ir.Table, best: ir.Table, memberships: ir.Table) -> ir.Table:
    grouped = accounts.group_by("owner_id").aggregate(
        first_seen=accounts.first_seen.min(),
        last_seen=accounts.last_seen.max(),
        event_count=accounts.event_count.sum(),
        group_ids=_collect(accounts, "group_id"),
        external_ids=_collect(accounts, "external_id"),
    )
    traits = _json_objects(best)
    names = best.filter(best.key == "name").select(
        name_owner="owner_id", name=best.value.try_cast("json").str
    )
    members = memberships.group_by(member_account="account_id").aggregate(
        member_count=memberships.profile_id.nunique()
    )
    joined = (
        grouped.left_join(traits, "owner_id")
        .left_join(names, grouped.owner_id == names.name_owner)
        .left_join(members, grouped.owner_id == members.member_account)
    )
    return joined.select(
        account_id=grouped.owner_id,
        name=joined.name,
        group_ids=ibis.coalesce(grouped.group_ids, _EMPTY_LIST),
        external_ids=ibis.coalesce(grouped.external_ids, _EMPTY_LIST),
        traits=joined.traits.fill_null("{}"),
        first_seen=grouped.first_seen,
        last_seen=grouped.last_seen,
        event_count=grouped.event_count,
        member_count=joined.member_count.fill_null(0),
    ).order_by("account_id")


def _memberships(warehouse: Warehouse, people: ir.Table, accounts: ir.Table) -> ir.Table:
    """A person's accounts; the current one is the account of their latest event."""
    seen = warehouse.table(NODE_MEMBERSHIPS_TABLE.name)
    person = people.select(person_identifier="identifier", profile_id="owner_id")
    account = accounts.select(account_identifier="identifier", account_id="owner_id")
    mapped = seen.join(person, "person_identifier").join(account, "account_identifier")
    spans = mapped.group_by(["profile_id", "account_id"]).aggregate(
        first_seen=mapped.first_seen.min(),
        last_seen=mapped.last_seen.max(),
        event_count=mapped.events.sum(),
    )
    latest = ibis.row_number().over(
        group_by="profile_id",
        order_by=[ibis.desc(spans.last_seen), ibis.desc(spans.first_seen), spans.account_id],
    )
    ranked = spans.mutate(is_current=latest == 0)
    return ranked.order_by(["profile_id", "first_seen", "account_id"])


def _graph_edges(
    warehouse: Warehouse, people: ir.Table, accounts: ir.Table, memberships: ir.Table
) -> ir.Table:
    seen = warehouse.table(NODE_EDGES_TABLE.name)
    parts = []
    for entity, owned in ((Entity.PERSON, people), (Entity.ACCOUNT, accounts)):
        mine = seen.filter(seen.entity == entity.value)
        mapped = mine.join(owned.select("identifier", "owner_id"), "identifier")
        parts.append(
            mapped.group_by(
                src_type=ibis.literal(entity.value),
                src_id=mapped.owner_id,
                dst_type=mapped.object_type,
                dst_id=mapped.object_id,
            ).aggregate(
                first_seen=mapped.first_seen.min(),
                last_seen=mapped.last_seen.max(),
                event_count=mapped.events.sum(),
            )
        )
    parts.append(
        memberships.select(
            src_type=ibis.literal(Entity.ACCOUNT.value),
            src_id=memberships.account_id,
            dst_type=ibis.literal(Entity.PERSON.value),
            dst_id=memberships.profile_id,
            first_seen=memberships.first_seen,
            last_seen=memberships.last_seen,
            event_count=memberships.event_count,
        )
    )
    return ibis.union(*[conform(p, EDGES_TABLE.schema) for p in parts]).order_by(
        ["src_type", "src_id", "dst_type", "dst_id"]
    )
