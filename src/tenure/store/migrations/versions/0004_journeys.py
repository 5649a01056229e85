"""Journeys: each customer's run through a journey, and its steps.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenure.store._tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    op.create_table(
        "journey_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("journey", sa.String(200), nullable=False),
        sa.Column("journey_version", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("next_at", UTCDateTime(), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("exit_reason", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_journey_runs"),
    )
    op.create_index(
        "ix_journey_runs_one_active",
        "journey_runs",
        ["journey", "account_id"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_index("ix_journey_runs_status_next_at", "journey_runs", ["status", "next_at"])
    op.create_table(
        "journey_steps",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("decision_id", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_journey_steps"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["journey_runs.id"], name="fk_journey_steps_run_id_journey_runs"
        ),
    )
    op.create_index("ix_journey_steps_run_id", "journey_steps", ["run_id"])


def downgrade() -> None:
    op.drop_table("journey_steps")
    op.drop_table("journey_runs")
