"""The read side: one customer's profile, whatever identifier you hold."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ibis
import orjson

from tenure.config import IdentifierKind
from tenure.errors import NotFoundError
from tenure.identity import _extract
from tenure.identity._model import (
    ACCOUNTS_TABLE,
    EDGES_TABLE,
    MEMBERSHIPS_TABLE,
    PERSON_SPEC,
    PROFILES_TABLE,
    Entity,
)
from tenure.identity._tables import rows

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tenure.warehouse import Warehouse

__all__ = [
    "AccountMembership",
    "AccountSummary",
    "GraphNeighbour",
    "IdentityLink",
    "ProfileView",
    "RecentEvent",
    "find_profile",
    "resolve_profile_id",
]

_SUMMARY_CHARS = 80
_MAX_HOPS = 1000
_KINDS = tuple(kind.value for kind in IdentifierKind)
_HINT = (
    "pass a profile id (p_…), a user id, an email, an anonymous id or an external id as "
    "type:value (e.g. stripe_customer_id:cus_1); if the events were loaded recently, "
    "run the identity stitch step first"
)


@dataclass(frozen=True, slots=True)
class AccountSummary:
    account_id: str
    name: str | None
    traits: dict[str, Any]
    group_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AccountMembership:
    account_id: str
    name: str | None
    first_seen: dt.datetime
    last_seen: dt.datetime
    event_count: int
    is_current: bool


@dataclass(frozen=True, slots=True)
class RecentEvent:
    timestamp: dt.datetime
    type: str
    event: str | None
    summary: str  # "key=value, …" of the properties, shortened


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """A link between two identifiers of the profile, and what was decided about it."""

    link_id: str
    rule: str
    left_id: str
    right_id: str
    status: str  # active | refused | split
    reason: str | None
    first_seen: dt.datetime
    message_id: str | None  # the event that first carried the link


@dataclass(frozen=True, slots=True)
class GraphNeighbour:
    kind: str  # ticket | opportunity | subscription
    id: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    event_count: int


@dataclass(frozen=True, slots=True)
class ProfileView:
    """Everything known about one person."""

    profile_id: str
    #: Identifier values by kind: user_id, email, anonymous_id, external_id ("type:value").
    identifiers: dict[str, tuple[str, ...]]
    traits: dict[str, Any]
    first_seen: dt.datetime
    last_seen: dt.datetime
    event_count: int
    account: AccountSummary | None
    #: Accounts the person was seen with, in the order they joined.
    account_history: tuple[AccountMembership, ...]
    #: Latest first.
    recent_events: tuple[RecentEvent, ...]
    neighbours: tuple[GraphNeighbour, ...]
    #: Profile ids merged into this one (they still resolve here).
    absorbed_ids: tuple[str, ...]
    #: Links touching the profile's identifiers: what merged it, what was refused
    #: or split (``tenure identity split LINK_ID`` undoes a wrong merge).
    links: tuple[IdentityLink, ...] = ()

    def neighbours_of(self, kind: str) -> tuple[GraphNeighbour, ...]:
        return tuple(n for n in self.neighbours if n.kind == kind)


def find_profile(warehouse: Warehouse, identifier: str, *, recent: int = 20) -> ProfileView:
    """The profile holding *identifier*; raises NotFoundError if none does.

    *identifier* may be a profile id (also one absorbed by a merge), a typed
    identifier (``email:ann@acme.com``), or a bare user id, email (any case),
    anonymous id, or external id as ``type:value``. When a bare value matches
    several kinds, user id beats email beats anonymous id beats external id.
    """
    profile_id = resolve_profile_id(warehouse, identifier)
    backend = warehouse.backend
    profiles = warehouse.table(PROFILES_TABLE.name)
    row = rows(backend, profiles.filter(profiles.profile_id == profile_id))[0]
    identifiers = {
        IdentifierKind.USER_ID.value: tuple(row["user_ids"] or ()),
        IdentifierKind.EMAIL.value: tuple(row["emails"] or ()),
        IdentifierKind.ANONYMOUS_ID.value: tuple(row["anonymous_ids"] or ()),
        IdentifierKind.EXTERNAL_ID.value: tuple(row["external_ids"] or ()),
    }
    history = _history(warehouse, profile_id)
    return ProfileView(
        profile_id=profile_id,
        identifiers=identifiers,
        traits=orjson.loads(row["traits"] or "{}"),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        event_count=int(row["event_count"] or 0),
        account=_account(warehouse, row["account_id"]),
        account_history=history,
        recent_events=_recent(warehouse, identifiers, recent),
        neighbours=_neighbours(warehouse, profile_id),
        absorbed_ids=_absorbed(warehouse, profile_id),
        links=_links(warehouse, [f"{k}:{v}" for k, vs in identifiers.items() for v in vs]),
    )


def _links(warehouse: Warehouse, identifiers: list[str]) -> tuple[IdentityLink, ...]:
    links = warehouse.table(PERSON_SPEC.links_table)
    mine = links.filter(links.left_id.isin(identifiers) | links.right_id.isin(identifiers))
    return tuple(
        IdentityLink(
            link_id=str(r["link_id"]),
            rule=str(r["rule"]),
            left_id=str(r["left_id"]),
            right_id=str(r["right_id"]),
            status=str(r["status"]),
            reason=r["reason"],
            first_seen=r["first_seen"],
            message_id=r["message_id"],
        )
        for r in rows(warehouse.backend, mine.order_by(["first_seen", "link_id"]))
    )


def resolve_profile_id(warehouse: Warehouse, identifier: str) -> str:
    """The live profile id for *identifier* (see :func:`find_profile`)."""
    text = identifier.strip()
    if not text or not warehouse.has_table(PROFILES_TABLE.name):
        raise NotFoundError(f"no profile for {identifier!r}", hint=_HINT)
    backend = warehouse.backend
    if text.startswith(PERSON_SPEC.prefix):
        live = _follow_merges(warehouse, text)
        if live is not None:
            return live
    candidates = _candidates(text)
    nodes = warehouse.table(PERSON_SPEC.nodes_table)
    found = {
        str(r["identifier"]): str(r[PERSON_SPEC.id_column])
        for r in rows(backend, nodes.filter(nodes.identifier.isin(candidates)))
    }
    for candidate in candidates:
        if candidate in found:
            return found[candidate]
    raise NotFoundError(f"no profile has the identifier {identifier!r}", hint=_HINT)


def _candidates(text: str) -> list[str]:
    kind, _, value = text.partition(":")
    if kind in _KINDS and value:
        return [f"email:{value.lower()}" if kind == "email" else text]
    found = [f"user_id:{text}"]
    if "@" in text:
        found.append(f"email:{text.lower()}")
    found.append(f"anonymous_id:{text}")
    if ":" in text:
        found.append(f"external_id:{text}")
    return found


def _is_live(warehouse: Warehouse, profile_id: str) -> bool:
    profiles = warehouse.table(PROFILES_TABLE.name)
    hit = profiles.filter(profiles.profile_id == profile_id).count()
    return bool(warehouse.backend.execute(hit))


def _follow_merges(warehouse: Warehouse, profile_id: str) -> str | None:
    """A live profile id, following merges from an absorbed one; None if unknown."""
    merges = warehouse.table(PERSON_SPEC.merges_table)
    kept, absorbed = PERSON_SPEC.kept_column, PERSON_SPEC.absorbed_column
    current = profile_id
    seen = set()
    for _ in range(_MAX_HOPS):
        if _is_live(warehouse, current):
            return current
        if current in seen:
            return None
        seen.add(current)
        latest = merges.filter((merges.action == "merge") & (merges[absorbed] == current))
        found = rows(warehouse.backend, latest.order_by(ibis.desc("seq")).limit(1))
        if not found:
            return None
        current = str(found[0][kept])
    return None


def _absorbed(warehouse: Warehouse, profile_id: str) -> tuple[str, ...]:
    merges = warehouse.table(PERSON_SPEC.merges_table)
    kept, absorbed = PERSON_SPEC.kept_column, PERSON_SPEC.absorbed_column
    hits = merges.filter((merges.action == "merge") & (merges[kept] == profile_id))
    ids = [str(r[absorbed]) for r in rows(warehouse.backend, hits.order_by("seq"))]
    return tuple(i for i in dict.fromkeys(ids) if not _is_live(warehouse, i))


def _account(warehouse: Warehouse, account_id: str | None) -> AccountSummary | None:
    if account_id is None:
        return None
    accounts = warehouse.table(ACCOUNTS_TABLE.name)
    found = rows(warehouse.backend, accounts.filter(accounts.account_id == account_id))
    if not found:
        return None
    row = found[0]
    return AccountSummary(
        account_id=account_id,
        name=row["name"],
        traits=orjson.loads(row["traits"] or "{}"),
        group_ids=tuple(row["group_ids"] or ()),
    )


def _history(warehouse: Warehouse, profile_id: str) -> tuple[AccountMembership, ...]:
    memberships = warehouse.table(MEMBERSHIPS_TABLE.name)
    accounts = warehouse.table(ACCOUNTS_TABLE.name).select("account_id", "name")
    mine = memberships.filter(memberships.profile_id == profile_id)
    joined = mine.left_join(accounts, "account_id").select(*mine.columns, accounts.name)
    return tuple(
        AccountMembership(
            account_id=r["account_id"],
            name=r["name"],
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
            event_count=int(r["event_count"]),
            is_current=bool(r["is_current"]),
        )
        for r in rows(warehouse.backend, joined.order_by(["first_seen", "account_id"]))
    )


def _neighbours(warehouse: Warehouse, profile_id: str) -> tuple[GraphNeighbour, ...]:
    edges = warehouse.table(EDGES_TABLE.name)
    mine = edges.filter(
        (edges.src_type == Entity.PERSON.value)
        & (edges.src_id == profile_id)
        & (edges.dst_type != Entity.PERSON.value)
    )
    return tuple(
        GraphNeighbour(
            kind=r["dst_type"],
            id=r["dst_id"],
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
            event_count=int(r["event_count"]),
        )
        for r in rows(warehouse.backend, mine.order_by(["dst_type", "first_seen", "dst_id"]))
    )


def _recent(
    warehouse: Warehouse, identifiers: dict[str, tuple[str, ...]], limit: int
) -> tuple[RecentEvent, ...]:
    """The profile's latest events: those whose person key is one of its identifiers."""
    if limit <= 0:
        return ()
    typed = [f"{kind}:{value}" for kind, values in identifiers.items() for value in values]
    events = warehouse.events()
    maybe = _might_belong(events, identifiers)
    if maybe is None:
        return ()
    candidates = events.filter(maybe)
    keys = _extract.event_keys(candidates, _extract.external_ids(candidates))
    mine = keys.filter(keys.person_key.isin(typed))
    latest = mine.order_by([ibis.desc("timestamp"), ibis.desc("message_id")]).limit(limit)
    return tuple(
        RecentEvent(
            timestamp=r["timestamp"],
            type=r["type"],
            event=r["event"],
            summary=_summary(r["properties"]),
        )
        for r in rows(warehouse.backend, latest.select("timestamp", "type", "event", "properties"))
    )


def _might_belong(
    events: ir.Table, identifiers: dict[str, tuple[str, ...]]
) -> ir.BooleanValue | None:
    """A cheap filter keeping every event that could belong to the profile."""
    tests: list[ir.BooleanValue] = []
    for column, kind in (
        (events.user_id, IdentifierKind.USER_ID),
        (events.anonymous_id, IdentifierKind.ANONYMOUS_ID),
        (events.email, IdentifierKind.EMAIL),
    ):
        values = identifiers[kind.value]
        if values:
            tests.append(column.isin(list(values)))
    for external in identifiers[IdentifierKind.EXTERNAL_ID.value]:
        tests.append(events.context.contains(external.partition(":")[2]))
    if not tests:
        return None
    combined = tests[0]
    for test in tests[1:]:
        combined = combined | test
    return combined


def _summary(properties: str | None) -> str:
    if not properties:
        return ""
    try:
        parsed = orjson.loads(properties)
    except orjson.JSONDecodeError:
        return properties[:_SUMMARY_CHARS]
    if not isinstance(parsed, dict):
        return str(parsed)[:_SUMMARY_CHARS]
    parts = []
    for key, value in parsed.items():
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        parts.append(f"{key}={shown}")
    text = ", ".join(parts)
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"
