"""Decide and deliver: policy and template versions, published customer state,
consent, decisions, review queue, outbox, delivery attempts, in-app messages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenure.store._tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("identifier", sa.String(length=320), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
    )
    op.create_index(
        op.f("ix_consent_identifier_channel"), "consent", ["identifier", "channel"], unique=False
    )
    op.create_table(
        "customer_state",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("features_hash", sa.String(length=64), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_customer_state")),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("cycle_id", sa.String(length=40), nullable=False),
        sa.Column("path", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("policy", sa.String(length=200), nullable=True),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("rule_id", sa.String(length=200), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("campaign", sa.String(length=200), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("scores", sa.Text(), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("features_hash", sa.String(length=64), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("candidates", sa.Text(), nullable=False),
        sa.Column("guardrails", sa.Text(), nullable=False),
        sa.Column("experiment", sa.Text(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index(
        op.f("ix_decisions_account_id_decided_at"),
        "decisions",
        ["account_id", "decided_at"],
        unique=False,
    )
    op.create_index(op.f("ix_decisions_cycle_id"), "decisions", ["cycle_id"], unique=False)
    op.create_index(op.f("ix_decisions_status"), "decisions", ["status"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.String(length=40), nullable=True),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=True),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("template", sa.String(length=200), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resends", sa.Integer(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index(
        op.f("ix_outbox_account_id_created_at"),
        "outbox",
        ["account_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_outbox_campaign_created_at"), "outbox", ["campaign", "created_at"], unique=False
    )
    op.create_index(
        op.f("ix_outbox_status_not_before"), "outbox", ["status", "not_before"], unique=False
    )
    op.create_table(
        "policy_versions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint(
            "kind", "name", "version", name=op.f("uq_policy_versions_kind_name_version")
        ),
    )
    op.create_table(
        "delivery_attempts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_delivery_attempts_outbox_id_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index(
        op.f("ix_delivery_attempts_outbox_id"), "delivery_attempts", ["outbox_id"], unique=False
    )
    op.create_table(
        "in_app_messages",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_in_app_messages_outbox_id_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_in_app_messages")),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_in_app_messages_outbox_id")),
    )
    op.create_index(
        op.f("ix_in_app_messages_user_id_status"),
        "in_app_messages",
        ["user_id", "status"],
        unique=False,
    )
    op.create_table(
        "review_queue",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("decision_id", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_review_queue_decision_id_decisions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_queue")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_review_queue_decision_id")),
    )
    op.create_index(op.f("ix_review_queue_status"), "review_queue", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_review_queue_status"), table_name="review_queue")
    op.drop_table("review_queue")
    op.drop_index(op.f("ix_in_app_messages_user_id_status"), table_name="in_app_messages")
    op.drop_table("in_app_messages")
    op.drop_index(op.f("ix_delivery_attempts_outbox_id"), table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_table("policy_versions")
    op.drop_index(op.f("ix_outbox_status_not_before"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_campaign_created_at"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_account_id_created_at"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_decisions_status"), table_name="decisions")
    op.drop_index(op.f("ix_decisions_cycle_id"), table_name="decisions")
    op.drop_index(op.f("ix_decisions_account_id_decided_at"), table_name="decisions")
    op.drop_table("decisions")
    op.drop_table("customer_state")
    op.drop_index(op.f("ix_consent_identifier_channel"), table_name="consent")
    op.drop_table("consent")
