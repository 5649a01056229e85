"""Tables of the operational store (SQLAlchemy Core).

Alembic migrations in ``migrations/versions`` create these; a test checks that
the migrated schema and this metadata agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

__all__ = [
    "UTCDateTime",
    "api_keys",
    "audit_log",
    "consent",
    "customer_state",
    "decisions",
    "delivery_attempts",
    "erasure_requests",
    "erasure_suppressions",
    "in_app_messages",
    "inbox",
    "ingest_runs",
    "journey_runs",
    "journey_steps",
    "metadata",
    "model_events",
    "model_versions",
    "outbox",
    "policy_versions",
    "quarantine",
    "review_queue",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every dialect (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"expected a timezone-aware datetime, got {value!r}")
        utc = value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


ingest_runs = Table(
    "ingest_runs",
    metadata,
    # seq orders runs even when a fixed clock gives two the same start time
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("id", String(32), nullable=False, unique=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("status", String(16), nullable=False),  # running | succeeded | failed
    Column("inputs", Text, nullable=False),  # JSON list of input descriptions
    Column("loaded", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("quarantined", BigInteger, nullable=False, default=0),
    Column("error", Text),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(32), nullable=False),
    Column("source", String(200), nullable=False),  # e.g. segment, stripe.subscriptions
    Column("source_file", Text, nullable=False),
    Column("record_number", BigInteger, nullable=False),  # 1-based line or data row
    Column("raw", Text, nullable=False),
    # sha256 of source file, record number and raw text: re-ingesting a file
    # does not quarantine the same record twice
    Column("fingerprint", String(64), nullable=False),
    Column("reason_code", String(40), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),  # open | loaded | requarantined | discarded
    Column("resolved_at", UTCDateTime()),
    Column("resolved_run_id", String(32)),
    Index(None, "status", "reason_code"),
    Index(None, "run_id"),
    Index(None, "fingerprint"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", Text, nullable=False),
    Column("detail", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Index(None, "action"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),  # 1, 2, … per name
    Column("status", String(16), nullable=False),  # candidate | shadow | production | retired
    # relative to the project's model directory, so a moved project keeps its models
    Column("artifact_path", Text, nullable=False),
    Column("artifact_hash", String(64), nullable=False),  # sha256 of the artifact file
    Column("artifact_bytes", BigInteger, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("training_start", UTCDateTime()),
    Column("training_end", UTCDateTime()),
    Column("feature_hashes", Text, nullable=False),  # JSON object: feature name -> hash
    Column("metrics", Text, nullable=False),  # JSON object
    Column("params", Text, nullable=False),  # JSON object
    Column("description", Text, nullable=False),
    Column("promoted_at", UTCDateTime()),
    Column("retired_at", UTCDateTime()),
    # the production version this one replaced: what a rollback restores
    Column("previous_production_id", BigInteger, ForeignKey("model_versions.id")),
    UniqueConstraint("name", "version"),
    # at most one production version per name, whatever concurrent promotions do
    Index(
        "ix_model_versions_one_production",
        "name",
        unique=True,
        sqlite_where=text("status = 'production'"),
        postgresql_where=text("status = 'production'"),
    ),
)

model_events = Table(
    "model_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model_version_id", BigInteger, ForeignKey("model_versions.id"), nullable=False),
    Column("from_status", String(16)),  # None when the version was registered
    Column("to_status", String(16), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(40), nullable=False),  # register | promote | retire | rollback
    Index(None, "model_version_id"),
)

# ----------------------------------------------------------------- decide
_ID = BigInteger().with_variant(Integer, "sqlite")

#: Policies and templates, one row per version; editing the file makes a new one.
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # policy | template
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),  # 1, 2, … per kind and name
    Column("content_hash", String(64), nullable=False),  # sha256 of the source text
    Column("source", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("kind", "name", "version"),
)

#: What the batch steps publish for the online path: one row per account.
customer_state = Table(
    "customer_state",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("as_of", UTCDateTime(), nullable=False),
    Column("name", Text),
    Column("stage", String(32)),
    Column("state", Text, nullable=False),  # JSON: scores, health, features, traits, contacts
    Column("features_hash", String(64), nullable=False),
    Column("published_at", UTCDateTime(), nullable=False),
)

#: Consent statements; the latest per identifier and channel holds ("all" = every channel).
consent = Table(
    "consent",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("identifier", String(320), nullable=False),  # typed: email:…, user_id:…, account:…
    Column("channel", String(16), nullable=False),  # a channel, or all
    Column("granted", Integer, nullable=False),  # 1 granted, 0 withdrawn
    Column("reason", String(32), nullable=False),  # unsubscribe | preference | erasure | import
    Column("source", String(200), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index(None, "identifier", "channel"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(40), primary_key=True),  # d_ + hash of cycle, customer
    Column("cycle_id", String(40), nullable=False),
    Column("path", String(16), nullable=False),  # batch | api | journey
    Column("account_id", String(64), nullable=False),
    Column("profile_id", String(64)),  # the contact the action goes to
    Column("decided_at", UTCDateTime(), nullable=False),
    # queued | deferred | review | blocked | rejected | expired
    Column("status", String(16), nullable=False),
    Column("policy", String(200)),
    Column("policy_version", Integer),
    Column("rule_id", String(200)),
    Column("channel", String(16)),
    Column("campaign", String(200)),
    Column("action", Text, nullable=False),  # JSON
    Column("value", Float),  # expected value when arbitration had an uplift estimate
    Column("models", Text, nullable=False),  # JSON: model → version label
    Column("scores", Text, nullable=False),  # JSON
    Column("features", Text, nullable=False),  # JSON snapshot of the features used
    Column("features_hash", String(64), nullable=False),
    Column("as_of", UTCDateTime(), nullable=False),  # the state's snapshot time
    Column("candidates", Text, nullable=False),  # JSON: every matching rule and its fate
    Column("guardrails", Text, nullable=False),  # JSON: each guardrail's verdict
    Column("experiment", Text),  # JSON: experiment and arm, when one assigned it
    Column("explanation", Text, nullable=False),
    Index(None, "account_id", "decided_at"),
    Index(None, "cycle_id"),
    Index(None, "status"),
)

review_queue = Table(
    "review_queue",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("decision_id", String(40), ForeignKey("decisions.id"), nullable=False, unique=True),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | rejected | expired
    Column("requested_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("decided_by", String(200)),
    Column("decided_at", UTCDateTime()),
    Column("note", Text),
    Index(None, "status"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    # travels with the action: the email's Message-ID, a webhook's Idempotency-Key
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("decision_id", String(40)),
    Column("account_id", String(64), nullable=False),
    Column("profile_id", String(64)),
    Column("channel", String(16), nullable=False),
    Column("recipient", Text, nullable=False),  # address, user id or webhook name
    Column("campaign", String(200)),
    Column("cost", Float, nullable=False),
    Column("template", String(200)),
    Column("template_version", Integer),
    Column("payload", Text, nullable=False),  # JSON: the rendered message or body
    # queued | sending | sent | retry | dead | cancelled
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("resends", Integer, nullable=False),  # sends after a lease expired mid-send
    Column("not_before", UTCDateTime(), nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_until", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    Column("last_error", Text),
    Index(None, "status", "not_before"),
    Index(None, "account_id", "created_at"),
    Index(None, "campaign", "created_at"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("outbox_id", BigInteger, ForeignKey("outbox.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(100), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("outcome", String(16), nullable=False),  # sent | error | resend
    Column("detail", Text),
    Index(None, "outbox_id"),
)

#: In-app messages: "delivering" one is writing it here, for the product to read.
in_app_messages = Table(
    "in_app_messages",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("outbox_id", BigInteger, ForeignKey("outbox.id"), nullable=False, unique=True),
    Column("account_id", String(64), nullable=False),
    Column("profile_id", String(64)),
    Column("user_id", String(200)),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),  # new | seen | dismissed
    Column("created_at", UTCDateTime(), nullable=False),
    Column("seen_at", UTCDateTime()),
    Index(None, "user_id", "status"),
)

#: One customer's pass through a journey. At most one active run per journey and
#: account (a partial unique index), so nobody is in the same journey twice at once.
journey_runs = Table(
    "journey_runs",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("journey", String(200), nullable=False),
    Column("journey_version", Integer, nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # active | completed | exited
    Column("step", String(200), nullable=False),  # the step to run next (or the last run)
    Column("next_at", UTCDateTime(), nullable=False),
    Column("entered_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("exit_reason", String(200)),
    Index(
        "ix_journey_runs_one_active",
        "journey",
        "account_id",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
    Index(None, "status", "next_at"),
)

#: What happened at each step of a run, in order.
journey_steps = Table(
    "journey_steps",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger, ForeignKey("journey_runs.id"), nullable=False),
    Column("step", String(200), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("outcome", String(32), nullable=False),  # sent | blocked | waiting | branch | exit …
    Column("detail", Text, nullable=False),
    Column("decision_id", String(40)),
    Index(None, "run_id"),
)

#: Events acknowledged by the HTTP collection API, waiting for the loader to move
#: them to the lake. A row is committed before the request is acknowledged; the
#: unique message id is what makes a client's retry a no-op. Loaded rows stay
#: for the dedupe window, then are pruned.
inbox = Table(
    "inbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False, unique=True),
    Column("source", String(64), nullable=False),  # the write key's id, or a webhook name
    Column("received_at", UTCDateTime(), nullable=False),
    Column("payload", Text, nullable=False),  # the event as JSON, as the loader reads it
    Column("loaded_at", UTCDateTime()),
    Index(
        "ix_inbox_waiting",
        "id",
        sqlite_where=text("loaded_at IS NULL"),
        postgresql_where=text("loaded_at IS NULL"),
    ),
    Index(None, "loaded_at"),
)

#: API keys. Only a hash of the secret is kept; the key is shown once, at creation.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # public part of the key, e.g. k7f3…
    Column("name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
    Column("rotated_to", String(32)),
    Column("last_used_at", UTCDateTime()),
)

#: Erasure requests (``tenure.govern.erasure``). The person's typed identifiers
#: are kept in clear only while the batch step that rewrites the lake and the
#: warehouse is pending (it needs them to find the person's events); it then
#: empties ``identifiers``. ``identifier_hash`` and ``result`` hold no personal data.
erasure_requests = Table(
    "erasure_requests",
    metadata,
    Column("id", String(40), primary_key=True),  # er_ + 16 hex digits
    Column("requested_at", UTCDateTime(), nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("identifier_hash", String(64), nullable=False),  # keyed hash of the named identifier
    Column("identifiers", Text),  # JSON list of typed identifiers; null once the lake is done
    Column("lake_status", String(16), nullable=False),  # pending | done
    Column("lake_done_at", UTCDateTime()),
    Column("result", Text),  # JSON: what the batch step removed (counts)
    Index(None, "lake_status"),
    Index(None, "identifier_hash"),
)

#: Keyed hashes of identifiers whose new events ingest drops (suppression).
erasure_suppressions = Table(
    "erasure_suppressions",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("request_id", String(40), nullable=False),
    Column("added_at", UTCDateTime(), nullable=False),
)
