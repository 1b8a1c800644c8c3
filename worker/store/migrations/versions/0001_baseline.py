"""Baseline: the schema siyu had when it adopted Alembic, frozen here.

A database made by an older siyu (its tables created straight from the models, no
`alembic_version`) is adopted, not rebuilt: the tables it lacks are created, the nullable
columns and the indexes it lacks are added, and columns that became optional lose NOT NULL
(`worker.store.adopt`). An empty database simply gets every table.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlmodel.sql.sqltypes import AutoString

from worker.store.adopt import adopt

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def schema() -> sa.MetaData:
    """The tables as they were at this revision (never the models of today)."""
    md = sa.MetaData()
    sa.Table(
        "accounts",
        md,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", AutoString(), nullable=False),
        sa.Column("channel", AutoString(), nullable=False),
        sa.Column("policy", AutoString(), nullable=True),
        sa.Column("tz", AutoString(), nullable=False),
        sa.Column("config", JSON_TYPE, nullable=True),
        sa.Column("state", AutoString(), nullable=False),
        sa.Column("state_reason", AutoString(), nullable=True),
        sa.Column("cooldown_until", sa.DateTime(), nullable=True),
        sa.Column("rate_multiplier", sa.Float(), nullable=False),
        sa.Column("rate_changed_at", sa.DateTime(), nullable=True),
        sa.Column("next_send_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.Index("ix_accounts_name", "name", unique=True),
    )
    sa.Table(
        "installation",
        md,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", AutoString(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("tracking_secret", AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Table(
        "segments",
        md,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", AutoString(), nullable=False),
        sa.Column("expression", AutoString(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.Index("ix_segments_name", "name", unique=True),
    )
    sa.Table(
        "campaigns",
        md,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", AutoString(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("template", AutoString(), nullable=False),
        sa.Column("vars", JSON_TYPE, nullable=False),
        sa.Column("kind", AutoString(), nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=True),
        sa.Column("end_at", sa.DateTime(), nullable=True),
        sa.Column("cron", AutoString(), nullable=True),
        sa.Column("tz", AutoString(), nullable=False),
        sa.Column("status", AutoString(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("skip_unrenderable", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.Index("ix_campaigns_name", "name", unique=True),
    )
    sa.Table(
        "contacts",
        md,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", AutoString(), nullable=False),
        sa.Column("external_id", AutoString(), nullable=False),
        sa.Column("name", AutoString(), nullable=False),
        sa.Column("tags", JSON_TYPE, nullable=False),
        sa.Column("attrs", JSON_TYPE, nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "external_id", name="uq_contact_channel_ext"),
        sa.Index("ix_contacts_owner_id", "owner_id"),
    )
    sa.Table(
        "campaign_accounts",
        md,
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.PrimaryKeyConstraint("campaign_id", "account_id"),
    )
    sa.Table(
        "campaign_runs",
        md,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("status", AutoString(), nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=False),
        sa.Column("end_at", sa.DateTime(), nullable=True),
        sa.Column("snapshot_max_contact_id", sa.Integer(), nullable=False),
        sa.Column("materialised_upto", sa.Integer(), nullable=False),
        sa.Column("materialised", sa.Boolean(), nullable=False),
        sa.Column("expected_total", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.Index("ix_campaign_runs_campaign_id", "campaign_id"),
    )
    sa.Table(
        "conversations",
        md,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("status", AutoString(), nullable=False),
        sa.Column("handoff_reason", AutoString(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id", "account_id", name="uq_conversation_contact_account"),
        sa.Index("ix_conversation_status", "status", "updated_at"),
        sa.Index("ix_conversations_account_id", "account_id"),
        sa.Index("ix_conversations_contact_id", "contact_id"),
    )
    sa.Table(
        "suppressions",
        md,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("reason", AutoString(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id"),
    )
    sa.Table(
        "messages",
        md,
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("inbound", sa.Boolean(), nullable=False),
        sa.Column("author", AutoString(), nullable=False),
        sa.Column("text", AutoString(), nullable=False),
        sa.Column("dedupe_key", AutoString(), nullable=True),
        sa.Column("provider_message_id", AutoString(), nullable=True),
        sa.Column("provider_sent_at", sa.DateTime(), nullable=True),
        sa.Column("action", AutoString(), nullable=True),
        sa.Column("reason", AutoString(), nullable=True),
        sa.Column("sources", JSON_TYPE, nullable=True),
        sa.Column("withheld", AutoString(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
        sa.Index("ix_message_conversation", "conversation_id", "id"),
        sa.Index(
            "ix_message_undecided",
            "id",
            postgresql_where=sa.text("decided_at IS NULL AND inbound = true"),
            sqlite_where=sa.text("decided_at IS NULL AND inbound = 1"),
        ),
        sa.Index("ix_messages_created_at", "created_at"),
    )
    sa.Table(
        "deliveries",
        md,
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("message_id", BIG_ID, nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("state", AutoString(), nullable=False),
        sa.Column("reason", AutoString(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", AutoString(), nullable=True),
        sa.Column("provider_message_id", AutoString(), nullable=True),
        sa.Column("lease_owner", AutoString(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("not_before", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["campaign_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "contact_id", name="uq_delivery_run_contact"),
        sa.Index("ix_deliveries_contact_id", "contact_id"),
        sa.Index(
            "ix_delivery_awaiting",
            "account_id",
            "provider_message_id",
            postgresql_where=sa.text("reason = 'awaiting_confirmation'"),
            sqlite_where=sa.text("reason = 'awaiting_confirmation'"),
        ),
        sa.Index("ix_delivery_lane", "account_id", "state", "run_id", "id"),
        sa.Index("ix_delivery_run_state", "run_id", "state"),
        sa.Index("ix_delivery_state_account", "state", "account_id"),
        sa.Index("uq_delivery_message", "message_id", unique=True),
    )
    return md


def upgrade() -> None:
    adopt(op.get_bind(), schema())


def downgrade() -> None:
    schema().drop_all(op.get_bind())
