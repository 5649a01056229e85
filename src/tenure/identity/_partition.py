"""Union-find over identifiers, with the over-merge rules.

This is the only part of stitching done in Python: deciding, link by link in
order, whether two profiles become one. Everything around it (which links
exist, which profiles they touch, writing the result) is Ibis set logic.

Rules, in the order they are checked:

1. A link touching an email whose local part is generic (``info@``,
   ``support@`` …) is refused with reason ``generic_email``. Such an email is
   still an identifier, but only of its own profile: it never merges anyone.
2. A link whose two ends are already in one profile is accepted and merges
   nothing.
3. A link is refused with reason ``limit_<kind>`` when, for some identifier
   kind, *both* profiles hold identifiers of that kind and together they would
   hold more than the limit. (A merge that adds no identifier of a kind cannot
   break that kind's limit, so a profile that already holds two user ids
   through an alias can still gain devices.)
   Alias links skip this check: an alias call is the sender's explicit
   statement that two ids are one person, e.g. a renamed user id.
4. Otherwise the profiles merge. The one whose anchor (earliest identifier:
   by first_seen, then kind — user_id, group_id, email, external_id,
   anonymous_id — then text) is earlier keeps its id; the other id is
   absorbed. So a profile's id is ``p_`` + hash of its anchor.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tenure.identity._model import (
    KIND_ORDER,
    LinkRule,
    LinkStatus,
    anchor_key,
    identifier_kind,
    identifier_value,
)

__all__ = [
    "GENERIC_EMAIL",
    "BatchOutcome",
    "Decision",
    "LinkCandidate",
    "NodeState",
    "Partition",
    "components",
    "decide_batch",
]

GENERIC_EMAIL = "generic_email"


@dataclass(frozen=True, slots=True)
class LinkCandidate:
    """A link met for the first time, waiting for a decision."""

    link_id: str
    rule: LinkRule
    left: str
    right: str
    first_seen: dt.datetime


@dataclass(frozen=True, slots=True)
class Decision:
    status: LinkStatus
    reason: str | None = None
    kept: str | None = None  # set when the link merged two profiles
    absorbed: str | None = None


@dataclass(slots=True)
class _Group:
    owner_id: str
    earliest: tuple[dt.datetime, int, str]  # anchor_key of the anchor member
    members: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)


class Partition:
    """Identifiers grouped into profiles (or accounts), merged one link at a time."""

    def __init__(self, *, limits: Mapping[str, int], generic_local_parts: Iterable[str]) -> None:
        self._limits = dict(limits)
        self._generic = frozenset(part.lower() for part in generic_local_parts)
        self._group_of: dict[str, _Group] = {}
        self._groups: dict[str, _Group] = {}

    # ----------------------------------------------------------------- state
    def add(self, identifier: str, owner_id: str, first_seen: dt.datetime) -> None:
        """Place *identifier* in profile *owner_id* (created if new)."""
        if identifier in self._group_of:
            return
        key = anchor_key(identifier, first_seen)
        group = self._groups.get(owner_id)
        if group is None:
            group = self._groups[owner_id] = _Group(owner_id, key)
        elif key < group.earliest:
            group.earliest = key
        group.members.add(identifier)
        group.counts[identifier_kind(identifier)] += 1
        self._group_of[identifier] = group

    def owner(self, identifier: str) -> str:
        return self._group_of[identifier].owner_id

    def owners(self) -> dict[str, str]:
        """Every identifier and the profile it belongs to now."""
        return {identifier: group.owner_id for identifier, group in self._group_of.items()}

    def groups(self) -> dict[str, frozenset[str]]:
        return {owner: frozenset(group.members) for owner, group in self._groups.items()}

    # ------------------------------------------------------------- decisions
    def apply(self, link: LinkCandidate) -> Decision:
        """Decide *link* and, if accepted across two profiles, merge them."""
        if self._is_generic(link.left) or self._is_generic(link.right):
            return Decision(LinkStatus.REFUSED, GENERIC_EMAIL)
        a = self._group_of[link.left]
        b = self._group_of[link.right]
        if a is b:
            return Decision(LinkStatus.ACTIVE)
        if link.rule is not LinkRule.ALIAS:
            broken = self._broken_limit(a, b)
            if broken is not None:
                return Decision(LinkStatus.REFUSED, f"limit_{broken}")
        kept, absorbed = (a, b) if a.earliest <= b.earliest else (b, a)
        kept_id, absorbed_id = kept.owner_id, absorbed.owner_id
        # Move the smaller member set, then give the result the surviving id.
        big, small = (a, b) if len(a.members) >= len(b.members) else (b, a)
        for member in small.members:
            self._group_of[member] = big
        big.members |= small.members
        big.counts.update(small.counts)
        big.earliest = min(big.earliest, small.earliest)
        big.owner_id = kept_id
        del self._groups[absorbed_id]
        self._groups[kept_id] = big
        return Decision(LinkStatus.ACTIVE, kept=kept_id, absorbed=absorbed_id)

    def _is_generic(self, identifier: str) -> bool:
        if identifier_kind(identifier) != "email":
            return False
        return identifier_value(identifier).partition("@")[0] in self._generic

    def _broken_limit(self, a: _Group, b: _Group) -> str | None:
        shared = set(a.counts) & set(b.counts)
        ordered = sorted(shared, key=lambda k: (_rank(k), k))
        for kind in ordered:
            limit = self._limits.get(kind)
            if limit is not None and a.counts[kind] + b.counts[kind] > limit:
                return kind
        return None


def _rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def components(members: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[frozenset[str]]:
    """Connected components of *members* under *edges* (edges outside *members* ignored)."""
    parent = {member: member for member in members}

    def find(x: str) -> str:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for left, right in edges:
        if left in parent and right in parent:
            ra, rb = find(left), find(right)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    found: dict[str, set[str]] = {}
    for member in parent:
        found.setdefault(find(member), set()).add(member)
    return sorted((frozenset(group) for group in found.values()), key=min)


@dataclass(frozen=True, slots=True)
class NodeState:
    """An identifier as stitching left it: its profile and when it was first seen."""

    identifier: str
    owner_id: str
    first_seen: dt.datetime


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    decisions: tuple[tuple[LinkCandidate, Decision], ...]
    #: The profile of every identifier given, after the batch.
    owners: dict[str, str]


def decide_batch(
    nodes: Iterable[NodeState],
    links: Iterable[LinkCandidate],
    *,
    limits: Mapping[str, int],
    generic_local_parts: Iterable[str],
) -> BatchOutcome:
    """Apply new *links* in the order given to the profiles of *nodes*.

    *nodes* must hold every identifier the links touch and every other member
    of their profiles (so limits and first_seen are those of whole profiles).
    """
    partition = Partition(limits=limits, generic_local_parts=generic_local_parts)
    for node in nodes:
        partition.add(node.identifier, node.owner_id, node.first_seen)
    decisions = tuple((link, partition.apply(link)) for link in links)
    return BatchOutcome(decisions, partition.owners())
