"""Model registry: model versions and the history of their status changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenure.store._tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ONE_PRODUCTION = sa.text("status = 'production'")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("artifact_path", sa.Text(), nullable=False),
        sa.Column("artifact_hash", sa.String(64), nullable=False),
        sa.Column("artifact_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("training_start", UTCDateTime(), nullable=True),
        sa.Column("training_end", UTCDateTime(), nullable=True),
        sa.Column("feature_hashes", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("promoted_at", UTCDateTime(), nullable=True),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("previous_production_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
        sa.ForeignKeyConstraint(
            ["previous_production_id"],
            ["model_versions.id"],
            name="fk_model_versions_previous_production_id_model_versions",
        ),
    )
    op.create_index(
        "ix_model_versions_one_production",
        "model_versions",
        ["name"],
        unique=True,
        sqlite_where=_ONE_PRODUCTION,
        postgresql_where=_ONE_PRODUCTION,
    )
    op.create_table(
        "model_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model_version_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_events"),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name="fk_model_events_model_version_id_model_versions",
        ),
    )
    op.create_index("ix_model_events_model_version_id", "model_events", ["model_version_id"])


def downgrade() -> None:
    op.drop_table("model_events")
    op.drop_table("model_versions")
