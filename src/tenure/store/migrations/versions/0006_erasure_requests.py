"""Erasure requests, for the batch step that rewrites the lake, and the suppression list.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenure.store._tables import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("identifier_hash", sa.String(64), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=True),
        sa.Column("lake_status", sa.String(16), nullable=False),
        sa.Column("lake_done_at", UTCDateTime(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_erasure_requests"),
    )
    op.create_index("ix_erasure_requests_lake_status", "erasure_requests", ["lake_status"])
    op.create_index("ix_erasure_requests_identifier_hash", "erasure_requests", ["identifier_hash"])
    op.create_table(
        "erasure_suppressions",
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name="pk_erasure_suppressions"),
    )


def downgrade() -> None:
    op.drop_table("erasure_suppressions")
    op.drop_index("ix_erasure_requests_identifier_hash", "erasure_requests")
    op.drop_index("ix_erasure_requests_lake_status", "erasure_requests")
    op.drop_table("erasure_requests")
