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
    "audit_log",
    "ingest_runs",
    "metadata",
    "model_events",
    "model_versions",
    "quarantine",
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
