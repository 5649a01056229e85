"""Identifiers, links and the warehouse tables identity stitching owns.

An identifier is typed text, ``<kind>:<value>``: ``user_id:u1``,
``email:ann@acme.com``, ``anonymous_id:3f1…``,
``external_id:stripe_customer_id:cus_1`` for people, and ``group_id:acme`` or
``external_id:hubspot_company_id:42`` for accounts. Stitching runs the same
machinery for two *entities*: people (identifiers → profiles) and accounts
(identifiers → accounts). Each entity has its own nodes, links and merges
tables so the person tables read as the brief names them (``profile_id``).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "ACCOUNTS_TABLE",
    "ACCOUNT_SPEC",
    "DAYS_TABLE",
    "EDGES_TABLE",
    "KIND_ORDER",
    "LINKS_SCHEMA",
    "MEMBERSHIPS_TABLE",
    "NODE_EDGES_TABLE",
    "NODE_MEMBERSHIPS_TABLE",
    "NODE_TRAITS_TABLE",
    "PERSON_SPEC",
    "PROFILES_TABLE",
    "RUNS_TABLE",
    "Entity",
    "EntitySpec",
    "LinkRule",
    "LinkStatus",
    "TableSpec",
    "anchor_key",
    "identifier_kind",
    "identifier_value",
    "link_id_for",
    "owner_id_for",
    "short_hash",
]

_TS = pa.timestamp("us", tz="UTC")
_HASH_CHARS = 16


class Entity(enum.StrEnum):
    PERSON = "person"
    ACCOUNT = "account"


class LinkRule(enum.StrEnum):
    """Why two identifiers were seen together. Part of a link's identity."""

    ANONYMOUS_USER = "anonymous_user"  # anonymous_id and user_id on one event
    USER_EMAIL = "user_email"  # user_id and email on one event
    ANONYMOUS_EMAIL = "anonymous_email"  # anonymous_id and email, no user_id
    ALIAS = "alias"  # alias call: previous_id → user_id
    EXTERNAL_ID = "external_id"  # person external id → the event's person identifier
    GROUP_EXTERNAL_ID = "group_external_id"  # account external id → the event's group_id


class LinkStatus(enum.StrEnum):
    ACTIVE = "active"  # accepted: it merged two profiles, or they were already one
    REFUSED = "refused"  # a limit or a generic email stopped it; never merged
    SPLIT = "split"  # disabled by split_link; never merges again


def short_hash(text: str) -> str:
    """The first 16 hex digits of SHA-256; Ibis computes the same with ``hexdigest``."""
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_CHARS]


def owner_id_for(prefix: str, identifier: str) -> str:
    """The stable id of the profile (``p_``) or account (``a_``) anchored at *identifier*."""
    return f"{prefix}{short_hash(identifier)}"


def link_id_for(entity: Entity, rule: LinkRule, left: str, right: str) -> str:
    return "l_" + short_hash("\x1f".join((entity.value, rule.value, left, right)))


#: On equal first_seen, the identifier of the earlier kind here anchors the id.
KIND_ORDER = ("user_id", "group_id", "email", "external_id", "anonymous_id")


def anchor_key(identifier: str, first_seen: dt.datetime) -> tuple[dt.datetime, int, str]:
    """Orders identifiers for choosing a profile's anchor: earliest, then kind, then text."""
    kind = identifier_kind(identifier)
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return (first_seen, rank, identifier)


def identifier_kind(identifier: str) -> str:
    return identifier.partition(":")[0]


def identifier_value(identifier: str) -> str:
    return identifier.partition(":")[2]


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """Where one entity's identity state lives and how its ids look."""

    entity: Entity
    prefix: str
    id_column: str
    nodes_table: str
    links_table: str
    merges_table: str

    @property
    def kept_column(self) -> str:
        return f"kept_{self.id_column}"

    @property
    def absorbed_column(self) -> str:
        return f"absorbed_{self.id_column}"

    def nodes_schema(self) -> pa.Schema:
        return pa.schema(
            [
                ("identifier", pa.string()),
                ("kind", pa.string()),
                (self.id_column, pa.string()),
                ("first_seen", _TS),
                ("last_seen", _TS),
                # events whose main identifier (see _extract.event_keys) is this one
                ("event_count", pa.int64()),
            ]
        )

    def links_schema(self) -> pa.Schema:
        return LINKS_SCHEMA

    def merges_schema(self) -> pa.Schema:
        return pa.schema(
            [
                ("seq", pa.int64()),  # order of recording; later rows win on lookup
                ("merge_id", pa.string()),
                ("action", pa.string()),  # merge | split
                ("at", _TS),  # merge: the linking event's time; split: when it was split
                ("recorded_at", _TS),
                ("link_id", pa.string()),
                ("message_id", pa.string()),  # the event that carried the link
                (self.kept_column, pa.string()),
                # merge: the profile absorbed; split: the profile split off
                (self.absorbed_column, pa.string()),
            ]
        )


LINKS_SCHEMA = pa.schema(
    [
        ("link_id", pa.string()),
        ("rule", pa.string()),
        ("left_id", pa.string()),
        ("right_id", pa.string()),
        ("first_seen", _TS),
        ("last_seen", _TS),
        ("events", pa.int64()),
        ("message_id", pa.string()),  # earliest event carrying the link
        ("ingest_run", pa.string()),  # run of that event
        ("status", pa.string()),
        ("reason", pa.string()),  # refused: a reason code; split: the operator's reason
        ("decided_at", _TS),  # when the status was last set
    ]
)

PERSON_SPEC = EntitySpec(
    entity=Entity.PERSON,
    prefix="p_",
    id_column="profile_id",
    nodes_table="identity_nodes",
    links_table="identity_links",
    merges_table="identity_merges",
)

ACCOUNT_SPEC = EntitySpec(
    entity=Entity.ACCOUNT,
    prefix="a_",
    id_column="account_id",
    nodes_table="account_nodes",
    links_table="account_links",
    merges_table="account_merges",
)


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    schema: pa.Schema


#: Ingest runs already stitched (the incremental watermark).
RUNS_TABLE = TableSpec(
    "identity_runs",
    pa.schema([("ingest_run", pa.string()), ("stitched_at", _TS), ("events", pa.int64())]),
)

#: Days of runs not yet in ``identity_runs`` already stitched: a backfill is
#: stitched a chunk of days per transaction, and a crash between chunks
#: resumes after the last one committed. Emptied when the runs complete.
DAYS_TABLE = TableSpec(
    "identity_days",
    pa.schema([("ingest_run", pa.string()), ("event_date", pa.date32())]),
)

#: Per identifier, trait key and source: the latest value (JSON text).
NODE_TRAITS_TABLE = TableSpec(
    "identity_node_traits",
    pa.schema(
        [
            ("entity", pa.string()),
            ("identifier", pa.string()),
            ("key", pa.string()),
            ("source", pa.string()),
            ("value", pa.string()),
            ("timestamp", _TS),
            ("message_id", pa.string()),
        ]
    ),
)

#: Person identifier seen with account identifier on the same event.
NODE_MEMBERSHIPS_TABLE = TableSpec(
    "identity_node_memberships",
    pa.schema(
        [
            ("person_identifier", pa.string()),
            ("account_identifier", pa.string()),
            ("first_seen", _TS),
            ("last_seen", _TS),
            ("events", pa.int64()),
        ]
    ),
)

#: Identifier seen with a ticket, opportunity or subscription.
NODE_EDGES_TABLE = TableSpec(
    "identity_node_edges",
    pa.schema(
        [
            ("entity", pa.string()),
            ("identifier", pa.string()),
            ("object_type", pa.string()),
            ("object_id", pa.string()),
            ("first_seen", _TS),
            ("last_seen", _TS),
            ("events", pa.int64()),
        ]
    ),
)

PROFILES_TABLE = TableSpec(
    "profiles",
    pa.schema(
        [
            ("profile_id", pa.string()),
            ("first_seen", _TS),
            ("last_seen", _TS),
            ("event_count", pa.int64()),
            ("user_ids", pa.list_(pa.string())),
            ("emails", pa.list_(pa.string())),
            ("anonymous_ids", pa.list_(pa.string())),
            ("external_ids", pa.list_(pa.string())),  # "type:value"
            ("traits", pa.string()),  # JSON object
            ("account_id", pa.string()),  # current account
        ]
    ),
)

ACCOUNTS_TABLE = TableSpec(
    "accounts",
    pa.schema(
        [
            ("account_id", pa.string()),
            ("name", pa.string()),
            ("group_ids", pa.list_(pa.string())),
            ("external_ids", pa.list_(pa.string())),
            ("traits", pa.string()),
            ("first_seen", _TS),
            ("last_seen", _TS),
            ("event_count", pa.int64()),
            ("member_count", pa.int64()),
        ]
    ),
)

MEMBERSHIPS_TABLE = TableSpec(
    "account_memberships",
    pa.schema(
        [
            ("profile_id", pa.string()),
            ("account_id", pa.string()),
            ("first_seen", _TS),
            ("last_seen", _TS),
            ("event_count", pa.int64()),
            ("is_current", pa.bool_()),
        ]
    ),
)

EDGES_TABLE = TableSpec(
    "graph_edges",
    pa.schema(
        [
            ("src_type", pa.string()),  # person | account
            ("src_id", pa.string()),
            ("dst_type", pa.string()),  # person | ticket | opportunity | subscription
            ("dst_id", pa.string()),
            ("first_seen", _TS),
            ("last_seen", _TS),
            ("event_count", pa.int64()),
        ]
    ),
)
