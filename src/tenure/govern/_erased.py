"""Who an erasure is about, resolved for the batch step: their identifiers, profiles, emails.

A request names the identifiers :func:`tenure.govern.erasure.erase` found in
the published state. The warehouse's identity graph knows more: every
identifier stitched into the same profile (an anonymous id from before sign-up,
a Stripe customer id). The person is the union of both; their events are those
carrying any of these identifiers, as stitching reads them (user id,
anonymous id, previous id, email, a person's external id).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ibis
import pyarrow as pa

from tenure.govern.erasure import event_identifiers
from tenure.govern.pii import Pseudonymizer
from tenure.identity._model import PERSON_SPEC

if TYPE_CHECKING:
    from tenure.warehouse import Warehouse

__all__ = ["Erased", "resolve"]


@dataclass(frozen=True, slots=True)
class Erased:
    """Everyone the batch step erases in one run."""

    #: typed identifiers events can carry (with the pseudonyms erase() wrote)
    identifiers: frozenset[str]
    #: their profile ids in the warehouse (``p_…``)
    profiles: frozenset[str]
    #: their email addresses, lower case: removed from other people's text too
    emails: frozenset[str]

    @classmethod
    def union(cls, people: Iterable[Erased]) -> Erased:
        found = list(people)
        return cls(
            frozenset().union(*(p.identifiers for p in found)),
            frozenset().union(*(p.profiles for p in found)),
            frozenset().union(*(p.emails for p in found)),
        )

    def values(self, kind: str) -> list[str]:
        """The bare values of the identifiers of *kind* (``user_id`` → ``["u1"]``)."""
        prefix = f"{kind}:"
        return sorted(i[len(prefix) :] for i in self.identifiers if i.startswith(prefix))

    def external_ids(self) -> list[str]:
        return sorted(i for i in self.identifiers if i.startswith("external_id:"))

    def cell_values(self, *, external: bool = True) -> list[str]:
        """Every bare value an export's cell could hold (emails lower case): ``user_id:u1``
        → ``u1``, ``external_id:stripe_customer_id:cus_1`` → ``cus_1`` (unless not
        *external*)."""
        values = set()
        for typed in self.identifiers:
            if _pseudonymous(typed):
                continue
            kind, _, value = typed.partition(":")
            if kind == "external_id":
                if external:
                    values.add(value.partition(":")[2])
            else:
                values.add(value)
        return sorted(values)

    def email_pattern(self) -> str | None:
        """A regular expression finding any of their emails in lower-cased text."""
        if not self.emails:
            return None
        return "|".join(re.escape(e) for e in sorted(self.emails))

    def typed_column(self) -> pa.Table:
        return pa.table({"identifier": pa.array(sorted(self.identifiers), pa.string())})


def _pseudonymous(typed: str) -> bool:
    return ":pii_" in typed or typed.startswith("anonymous_id:email:")


def resolve(warehouse: Warehouse | None, requested: Iterable[str], masker: Pseudonymizer) -> Erased:
    """The person behind *requested* (typed identifiers, ``profile:`` ids among them)."""
    typed = set(requested)
    profiles = {i.partition(":")[2] for i in typed if i.startswith("profile:")}
    if warehouse is not None and warehouse.has_table(PERSON_SPEC.nodes_table):
        nodes = warehouse.table(PERSON_SPEC.nodes_table)
        known = ibis.memtable(pa.table({"identifier": pa.array(sorted(typed), pa.string())}))
        found = nodes.semi_join(known, "identifier").select(PERSON_SPEC.id_column).distinct()
        profiles.update(
            str(p) for p in warehouse.backend.to_pyarrow(found).column(0).to_pylist() if p
        )
        if profiles:
            wanted = ibis.memtable(
                pa.table({PERSON_SPEC.id_column: pa.array(sorted(profiles), pa.string())})
            )
            members = nodes.semi_join(wanted, PERSON_SPEC.id_column).select("identifier")
            typed.update(
                str(i) for i in warehouse.backend.to_pyarrow(members).column(0).to_pylist()
            )
    emails = {i.partition(":")[2].lower() for i in typed if i.startswith("email:")}
    return Erased(
        identifiers=frozenset(event_identifiers(typed, masker)),
        profiles=frozenset(profiles),
        emails=frozenset(e for e in emails if not e.startswith("pii_")),
    )
