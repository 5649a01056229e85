"""Erasure of a person from the operational store, and who holds an identifier.

An erasure request names one typed identifier (``email:dee@acme.com``). The
person behind it is every published contact holding that identifier, with all
of *their* identifiers (``user_id:u1``, ``profile:p_…``). :func:`erase` then,
in the caller's transaction:

1. withdraws consent on all channels for each of those identifiers, reason
   ``erasure`` — the one record that must keep the identifier, so that the
   person is never contacted again, even when a later batch re-publishes them;
2. cancels their outbox rows that are still waiting (``queued``, ``retry``)
   and blanks those rows' recipient and payload (a row being sent right now is
   cancelled by the worker, which checks consent after its claim);
3. removes the contact from ``customer_state`` and their in-app messages;
4. pseudonymizes the person's values in inbox events not yet loaded into
   the lake;
5. records an erasure request (``erasure_requests``) holding the person's
   typed identifiers, and puts a keyed hash of each (and of the pseudonyms
   step 4 wrote) on the suppression list, so that from this commit on ingest
   drops their new events (:mod:`tenure.collect._suppress`).

What it does not do: rewrite the Parquet lake and the warehouse, which are
batch-owned (DuckDB allows one writer; the server never opens the warehouse).
The batch step :func:`tenure.govern.lake_erasure.apply_erasures` (``tenure erasures
apply``, run first by ``tenure identity stitch``) does, for every pending
request; until then the lake and the warehouse still hold the person's events
and profile, and ``publish_state`` may publish the contact again (never
contactable, per step 1). A report's ``lake`` is ``pending`` until the step
marks the request done (:func:`tenure.store._erasures.get_erasure_request`).

Why the request keeps identifiers in clear: the batch step must find the
person's events by value, in a lake that knows no hashes. It keeps them only
while the request is pending and then empties the column; what stays is the
suppression list's keyed hashes (SHA-256 under a key kept outside the store),
which recognize the identifiers on new events but cannot be read back, nor
checked against a guessed address without the key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, or_, select, update

from tenure.decide._state import Contact, CustomerState, load_states, save_states
from tenure.govern.consent import ALL_CHANNELS, ConsentReason, record_consent
from tenure.govern.pii import Pseudonymizer
from tenure.store import append_audit
from tenure.store._erasures import (
    ErasureKey,
    LakeStatus,
    add_erasure_request,
    add_suppressions,
    new_erasure_request_id,
)
from tenure.store._tables import customer_state, in_app_messages, inbox, outbox

__all__ = [
    "LAKE_DONE",
    "LAKE_PENDING",
    "ErasureReport",
    "Holder",
    "erase",
    "event_identifiers",
    "holders",
    "normalize_identifier",
]

#: What an erasure leaves to the batch side, while it is pending.
LAKE_PENDING = (
    "the Parquet lake and the warehouse still hold this person's events and profile until the "
    "batch erasure step (`tenure erasures apply`, run first by `tenure identity stitch`) "
    "rewrites them; new events carrying their identifiers are already dropped at ingest"
)
#: What the batch side did, once done.
LAKE_DONE = (
    "the batch erasure step removed this person's events from the Parquet lake and their "
    "rows from the warehouse; new events carrying their identifiers are dropped at ingest"
)

_WAITING = ("queued", "retry")
_INTERNAL_TYPES = frozenset({"profile"})  # tenure's own ids: nothing personal to redact


def normalize_identifier(identifier: str) -> str:
    """``type:value`` trimmed, emails lower-cased (as contacts hold them); ValueError if untyped."""
    kind, sep, value = identifier.strip(" ").partition(":")
    kind, value = kind.strip(" "), value.strip(" ")
    if not sep or not kind or not value:
        raise ValueError(
            f"{identifier!r} is not a typed identifier like email:dee@acme.com or user_id:u1"
        )
    return f"{kind}:{value.lower() if kind == 'email' else value}"


def _like_json_string(value: str) -> str:
    """A LIKE pattern matching *value* as a whole JSON string, with ``!`` as the escape."""
    quoted = orjson.dumps(value).decode()
    escaped = quoted.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


def _like_inside(value: str) -> str:
    inner = orjson.dumps(value).decode()[1:-1]
    escaped = inner.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class Holder:
    """A published contact holding an identifier, and the account it belongs to."""

    state: CustomerState
    contact_index: int

    @property
    def contact(self) -> Contact:
        return self.state.contacts[self.contact_index]


def holders(connection: Connection, identifier: str) -> list[Holder]:
    """Every published contact with *identifier* among its typed identifiers, by account.

    ``customer_state`` keeps contacts inside its JSON document, so the database
    narrows the rows with a ``LIKE`` on the identifier's JSON text (one scan,
    no parsing) and only those rows are parsed and checked exactly.
    """
    wanted = normalize_identifier(identifier)
    ids = connection.execute(
        select(customer_state.c.account_id).where(
            customer_state.c.state.like(_like_json_string(wanted), escape="!")
        )
    ).scalars()
    found = []
    for state in load_states(connection, list(ids)):
        for index, contact in enumerate(state.contacts):
            if wanted in contact.identifiers:
                found.append(Holder(state, index))
    return found


@dataclass(frozen=True, slots=True)
class ErasureReport:
    #: The erasure request recorded for the batch step (``GET /v1/erasure/{id}``).
    request_id: str
    identifier: str
    #: The person's identifiers: consent is withdrawn on all channels for each.
    identifiers: tuple[str, ...]
    #: Accounts whose published state no longer lists the contact.
    accounts: tuple[str, ...]
    contacts_removed: int
    outbox_cancelled: int
    in_app_removed: int
    inbox_redacted: int
    lake: LakeStatus = LakeStatus.PENDING


def _values(identifiers: Iterable[str]) -> tuple[set[str], set[str]]:
    """Personal values to redact: (exact strings, emails compared without case)."""
    exact: set[str] = set()
    emails: set[str] = set()
    for typed in identifiers:
        kind, _, value = typed.partition(":")
        if kind in _INTERNAL_TYPES or not value:
            continue
        if kind == "email":
            emails.add(value.lower())
        else:
            exact.add(value)
    return exact, emails


_IDENTITY_FIELDS = ("userId", "anonymousId", "previousId")


def event_identifiers(identifiers: Iterable[str], masker: Pseudonymizer) -> set[str]:
    """The typed identifiers the person's events can carry, as ingest and stitching type them.

    Their own (``profile:`` ids are tenure's and never on an event), and the
    pseudonyms :func:`erase` leaves in their inbox events: a user id or an
    anonymous id pseudonymized (``user_id:pii_…``), and the anonymous id the
    unsubscribe link gives someone nobody published (``anonymous_id:email:pii_…``).
    """
    found: set[str] = set()
    for typed in identifiers:
        kind, _, value = typed.partition(":")
        if kind in _INTERNAL_TYPES or not value:
            continue
        found.add(typed)
        alias = masker.pseudonym(value)
        found.update({f"user_id:{alias}", f"anonymous_id:{alias}"})
        found.add(f"anonymous_id:{masker.identifier(typed)}")
    return found


def _redact_emails(value: Any, emails: set[str], masker: Pseudonymizer) -> Any:
    """*value* with the person's emails pseudonymized wherever they are."""
    if isinstance(value, str):
        lowered = value.lower()
        return masker.text(value) if any(e in lowered for e in emails) else value
    if isinstance(value, dict):
        return {k: _redact_emails(v, emails, masker) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_emails(v, emails, masker) for v in value]
    return value


def _is_theirs(event: dict[str, Any], exact: set[str], emails: set[str]) -> bool:
    if any(event.get(f) in exact for f in _IDENTITY_FIELDS):
        return True
    for traits in (event.get("traits"), (event.get("context") or {}).get("traits")):
        email = traits.get("email") if isinstance(traits, dict) else None
        if isinstance(email, str) and email.strip().lower() in emails:
            return True
    return False


def _redact_event(
    event: dict[str, Any], exact: set[str], emails: set[str], masker: Pseudonymizer
) -> dict[str, Any]:
    """The person pseudonymized in *event*.

    Their emails go wherever they appear; their other ids (user ids, which
    can be short and common strings) only where an event names its person.
    In the person's own events every personal field goes too.
    """
    redacted: dict[str, Any] = _redact_emails(event, emails, masker)
    for name in _IDENTITY_FIELDS:
        if redacted.get(name) in exact:
            redacted[name] = masker.pseudonym(str(redacted[name]))
    if _is_theirs(event, exact, emails):
        for key in ("traits", "properties", "context"):
            if isinstance(redacted.get(key), dict):
                redacted[key] = masker.document(redacted[key])
    return redacted


def _mentioning(column: Any, exact: set[str], emails: set[str]) -> list[Any]:
    """Conditions on a column of JSON text: it holds one of *exact* as a whole JSON
    string, or one of *emails* anywhere (without case)."""
    return [column.like(_like_json_string(v), escape="!") for v in sorted(exact)] + [
        func.lower(column).like(_like_inside(e), escape="!") for e in sorted(emails)
    ]


def _inbox_events(
    connection: Connection, exact: set[str], emails: set[str], *, loaded: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row id, event) of the inbox rows, loaded into the lake or still waiting, that
    mention the person. A row that is not a JSON object is not read as an event (the
    loader quarantines it)."""
    patterns = _mentioning(inbox.c.payload, exact, emails)
    if not patterns:
        return
    state = inbox.c.loaded_at.is_not(None) if loaded else inbox.c.loaded_at.is_(None)
    rows = connection.execute(
        select(inbox.c.id, inbox.c.payload).where(state, or_(*patterns))
    ).all()
    for row in rows:
        try:
            event = orjson.loads(row.payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            yield int(row.id), event


def _redact_inbox(
    connection: Connection, exact: set[str], emails: set[str], masker: Pseudonymizer
) -> int:
    changed = 0
    for row_id, event in _inbox_events(connection, exact, emails, loaded=False):
        redacted = _redact_event(event, exact, emails, masker)
        if redacted == event:
            continue
        done = connection.execute(
            update(inbox)
            .where(inbox.c.id == row_id, inbox.c.loaded_at.is_(None))
            .values(payload=orjson.dumps(redacted).decode())
        )
        changed += int(done.rowcount or 0)
    return changed


def _cancel_outbox(
    connection: Connection,
    identifiers: set[str],
    profile_ids: set[str],
    exact: set[str],
    emails: set[str],
    masker: Pseudonymizer,
) -> int:
    matches = [outbox.c.payload.like(_like_json_string(i), escape="!") for i in sorted(identifiers)]
    if exact:
        matches.append(outbox.c.recipient.in_(sorted(exact)))
    if emails:
        matches.append(func.lower(outbox.c.recipient).in_(sorted(emails)))
    if profile_ids:
        matches.append(outbox.c.profile_id.in_(sorted(profile_ids)))
    rows = connection.execute(
        select(outbox.c.id, outbox.c.recipient).where(outbox.c.status.in_(_WAITING), or_(*matches))
    ).all()
    cancelled = 0
    for row in rows:
        done = connection.execute(
            update(outbox)
            .where(outbox.c.id == row.id, outbox.c.status.in_(_WAITING))
            .values(
                status="cancelled",
                recipient=masker.pseudonym(row.recipient),
                payload=orjson.dumps({"erased": True}).decode(),
                last_error="cancelled: erasure",
            )
        )
        cancelled += int(done.rowcount or 0)
    return cancelled


def erase(
    connection: Connection,
    identifier: str,
    *,
    masker: Pseudonymizer,
    at: dt.datetime,
    actor: str,
    key: ErasureKey,
) -> ErasureReport:
    """Erase the person holding *identifier* from the operational store (see the module).

    *key* hashes the identifiers that go on the suppression list.
    """
    wanted = normalize_identifier(identifier)
    found = holders(connection, wanted)
    identifiers = {wanted}
    profile_ids: set[str] = set()
    user_ids: set[str] = set()
    for holder in found:
        identifiers.update(holder.contact.identifiers)
        profile_ids.add(holder.contact.profile_id)
        if holder.contact.user_id:
            user_ids.add(holder.contact.user_id)
    for typed in sorted(identifiers):
        record_consent(
            connection, typed, ALL_CHANNELS,
            granted=False, reason=ConsentReason.ERASURE, source=actor, at=at,
        )  # fmt: skip
        kind, _, value = typed.partition(":")
        if kind == "user_id":
            user_ids.add(value)
    exact, emails = _values(identifiers)
    # the account may hold the person twice (two profiles merged later): drop every match
    updated: dict[str, CustomerState] = {}
    removed = 0
    for holder in found:
        state = updated.get(holder.state.account_id, holder.state)
        kept = tuple(c for c in state.contacts if not identifiers.intersection(c.identifiers))
        removed += len(state.contacts) - len(kept)
        updated[state.account_id] = dataclasses.replace(state, contacts=kept)
    if updated:
        save_states(connection, updated.values(), published_at=at)
    cancelled = _cancel_outbox(connection, identifiers, profile_ids, exact, emails, masker)
    in_app = 0
    person = []
    if user_ids:
        person.append(in_app_messages.c.user_id.in_(sorted(user_ids)))
    if profile_ids:
        person.append(in_app_messages.c.profile_id.in_(sorted(profile_ids)))
    if person:
        in_app = int(connection.execute(delete(in_app_messages).where(or_(*person))).rowcount or 0)
    redacted = _redact_inbox(connection, exact, emails, masker)
    request_id = new_erasure_request_id()
    add_erasure_request(
        connection,
        request_id=request_id,
        at=at,
        actor=actor,
        identifier_hash=key.hash(wanted),
        identifiers=identifiers,
    )
    add_suppressions(
        connection, request_id, [key.hash(i) for i in event_identifiers(identifiers, masker)], at
    )
    report = ErasureReport(
        request_id=request_id,
        identifier=wanted,
        identifiers=tuple(sorted(identifiers)),
        accounts=tuple(sorted(updated)),
        contacts_removed=removed,
        outbox_cancelled=cancelled,
        in_app_removed=in_app,
        inbox_redacted=redacted,
    )
    append_audit(
        connection,
        at=at,
        actor=actor,
        action="erasure",
        # the audit chain is immutable: it names the person by pseudonym only
        target=f"identifier:{masker.identifier(wanted)}",
        detail={
            "identifiers": [masker.identifier(i) for i in report.identifiers],
            "accounts": list(report.accounts),
            "contacts_removed": removed,
            "outbox_cancelled": cancelled,
            "in_app_removed": in_app,
            "inbox_redacted": redacted,
            "request": request_id,
            "lake": LakeStatus.PENDING.value,
        },
    )
    return report
