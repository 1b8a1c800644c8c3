"""The tables. The database is the source of truth; Celery messages are only triggers.

Timestamps are naive UTC everywhere (SQLite keeps no zone); `utcnow()` makes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# JSONB on PostgreSQL (indexable, `@>` containment), plain JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# Deliveries grow by audience x runs: 64-bit ids on PostgreSQL; SQLite's rowid is 64-bit already.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Naive UTC now, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


class DeliveryState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


OPEN_STATES = (DeliveryState.PENDING, DeliveryState.CLAIMED, DeliveryState.SENDING)


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class AccountState(StrEnum):
    ACTIVE = "active"
    COOLDOWN = "cooldown"
    PAUSED = "paused"
    BANNED = "banned"


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    channel: str
    policy: str | None = None
    tz: str = "Asia/Shanghai"
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType))
    state: str = AccountState.ACTIVE
    state_reason: str | None = None
    cooldown_until: NaiveDatetime | None = None
    # Health: the share of the policy's rate in use (AIMD: halved on throttling, regained slowly).
    rate_multiplier: float = 1.0
    rate_changed_at: NaiveDatetime | None = None
    # When the account can send next, if later than now (quiet hours, a full day): the tick
    # wakes its lane then, instead of a task waiting in the broker (DESIGN 17).
    next_send_at: NaiveDatetime | None = None
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_contact_channel_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    external_id: str
    name: str = ""
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    attrs: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    owner_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)


class Segment(SQLModel, table=True):
    __tablename__ = "segments"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    expression: str
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class Campaign(SQLModel, table=True):
    __tablename__ = "campaigns"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    segment_id: int = Field(foreign_key="segments.id")
    template: str
    vars: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    kind: str = "marketing"
    start_at: NaiveDatetime | None = None
    end_at: NaiveDatetime | None = None
    cron: str | None = None
    tz: str = "Asia/Shanghai"
    status: str = CampaignStatus.DRAFT
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    # Members the template cannot render are skipped (`render_error`) instead of refusing
    # create/start. Nullable so `init` can add it to an older database (NULL: refuse).
    skip_unrenderable: bool | None = None


class CampaignAccount(SQLModel, table=True):
    """The sender accounts of a campaign, in the order the operator gave them."""

    __tablename__ = "campaign_accounts"

    campaign_id: int = Field(foreign_key="campaigns.id", primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", primary_key=True)
    position: int = 0


class CampaignRun(SQLModel, table=True):
    """One execution of a campaign (a cron campaign has one per firing)."""

    __tablename__ = "campaign_runs"

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id", index=True)
    status: str = CampaignStatus.RUNNING
    start_at: NaiveDatetime = Field(default_factory=utcnow)
    end_at: NaiveDatetime | None = None
    # Materialisation walks contacts by id (keyset) up to the snapshot taken at start.
    snapshot_max_contact_id: int = 0
    materialised_upto: int = 0
    materialised: bool = False
    expected_total: int = 0
    started_at: NaiveDatetime | None = None
    finished_at: NaiveDatetime | None = None
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class FiringStatus(StrEnum):
    FIRED = "fired"  # a run was opened for the due time
    SKIPPED = "skipped"  # no run: `reason` says why (paused, overdue, previous_run_unfinished)


class CampaignFiring(SQLModel, table=True):
    """One due time of a cron campaign, decided once: fired (with its run) or skipped.

    The unique (campaign, due time) pair is the claim: whichever `siyu beat` inserts the row
    decides, in the transaction that opens the run; every other beat finds it taken.
    """

    __tablename__ = "campaign_firings"
    __table_args__ = (UniqueConstraint("campaign_id", "due_at", name="uq_firing_campaign_due"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id")
    due_at: NaiveDatetime  # naive UTC, as every timestamp
    status: str = FiringStatus.FIRED
    reason: str | None = None
    run_id: int | None = Field(default=None, foreign_key="campaign_runs.id")
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    """One message to one contact: the per-recipient log and the outbox (DESIGN 1).

    Either a campaign send (`run_id`: one row per run and contact) or a reply in a conversation
    (`message_id`: the outbound message it carries, one row per message, no run). Both go
    through the same account lanes, limiter and exactly-once state machine.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("run_id", "contact_id", name="uq_delivery_run_contact"),
        Index("ix_delivery_lane", "account_id", "state", "run_id", "id"),
        Index("ix_delivery_run_state", "run_id", "state"),
        Index("ix_delivery_state_account", "state", "account_id"),
        Index("uq_delivery_message", "message_id", unique=True),
        # Sends a platform holds for a person's confirmation (`dispatch.confirmations`).
        Index(
            "ix_delivery_awaiting",
            "account_id",
            "provider_message_id",
            postgresql_where=text("reason = 'awaiting_confirmation'"),
            sqlite_where=text("reason = 'awaiting_confirmation'"),
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    run_id: int | None = Field(default=None, foreign_key="campaign_runs.id")
    message_id: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("messages.id"), nullable=True)
    )
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    account_id: int | None = Field(default=None, foreign_key="accounts.id")
    state: str = DeliveryState.PENDING
    reason: str | None = None
    attempts: int = 0
    last_error: str | None = None
    provider_message_id: str | None = None
    lease_owner: str | None = None
    lease_until: NaiveDatetime | None = None
    not_before: NaiveDatetime | None = None
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)
    sent_at: NaiveDatetime | None = None


class DeliveryCount(SQLModel, table=True):
    """How many deliveries of a run, sent by an account, are in a state (`store.tallies`).

    Kept by triggers on `deliveries`, so every writer is counted, whatever statement it runs:
    on SQLite they add to these rows directly; on PostgreSQL they append to
    `delivery_count_deltas`, which a fold adds in here (no row every lane must lock).
    0 stands for no run (a reply) and for no account (not yet assigned).
    """

    __tablename__ = "delivery_counts"

    run_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    account_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    state: str = Field(primary_key=True)
    n: int = Field(sa_column=Column(BigInteger, nullable=False))


class DeliveryCountDelta(SQLModel, table=True):
    """A change to `delivery_counts` not yet folded in (PostgreSQL; one per statement)."""

    __tablename__ = "delivery_count_deltas"

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    run_id: int
    account_id: int
    state: str
    n: int = Field(sa_column=Column(BigInteger, nullable=False))


class SentMinute(SQLModel, table=True):
    """How many deliveries of a run an account sent in a minute (UTC): the console's
    messages-per-minute chart and the ETA. Kept by the same triggers, for the last days."""

    __tablename__ = "sent_minutes"

    run_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    account_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    minute: NaiveDatetime = Field(primary_key=True)
    n: int = Field(sa_column=Column(BigInteger, nullable=False))


class SentMinuteDelta(SQLModel, table=True):
    """Sends not yet folded into `sent_minutes` (PostgreSQL; one row per statement)."""

    __tablename__ = "sent_minute_deltas"

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    run_id: int
    account_id: int
    minute: NaiveDatetime
    n: int = Field(sa_column=Column(BigInteger, nullable=False))


class Suppression(SQLModel, table=True):
    """A contact that must not be messaged again (opt-out, complaint, operator block)."""

    __tablename__ = "suppressions"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id", unique=True)
    reason: str = "opted_out"
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class Installation(SQLModel, table=True):
    """One row: this database's installation id (DESIGN 16), made once by `siyu init`.

    Idempotency keys and Redis keys carry it, so two databases sharing a platform account or
    a Redis never take each other's sends or limits for their own.
    """

    __tablename__ = "installation"

    id: int = Field(default=1, primary_key=True)
    uid: str
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    # Signs tracked links' recipient tokens (unless SIYU_TRACKING_SECRET overrides it): made
    # by `siyu init`, never the same on two installations, never shown.
    tracking_secret: str | None = None


class ConversationStatus(StrEnum):
    ASSISTANT = "assistant"  # the reply assistant answers
    HUMAN = "human"  # handed off: waiting in the inbox for a person


class Author(StrEnum):
    LEARNER = "learner"  # inbound: what the contact wrote
    ASSISTANT = "assistant"  # the reply assistant's answer
    HUMAN = "human"  # an operator's answer (`siyu reply`)


class Conversation(SQLModel, table=True):
    """One learner talking with one account: the thread replies go back through."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("contact_id", "account_id", name="uq_conversation_contact_account"),
        Index("ix_conversation_status", "status", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    status: str = ConversationStatus.ASSISTANT
    handoff_reason: str | None = None  # why it waits for a person
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)  # the last message's time


class Message(SQLModel, table=True):
    """One message of a conversation, in either direction, with the decision taken on it.

    An inbound message is stored once per provider message id (`dedupe_key`), however often
    the platform delivers it. Its decision (`action`, `reason`, `sources`, and any answer the
    guardrails `withheld`) is recorded with it, so every automatic answer can be explained
    afterwards. An outbound message goes out as a delivery (`deliveries.message_id`), whose
    state says whether and when it was sent.
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_message_conversation", "conversation_id", "id"),
        # The reply drain's queue: the inbound messages not yet decided, oldest first.
        Index(
            "ix_message_undecided",
            "id",
            postgresql_where=text("decided_at IS NULL AND inbound = true"),
            sqlite_where=text("decided_at IS NULL AND inbound = 1"),
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    conversation_id: int = Field(foreign_key="conversations.id")
    inbound: bool
    author: str  # an `Author`
    text: str
    # Inbound: "<account id>:<provider message id>", unique; outbound: None.
    dedupe_key: str | None = Field(default=None, unique=True)
    provider_message_id: str | None = None
    provider_sent_at: NaiveDatetime | None = None
    # Inbound, once decided: reply | handoff | opt_out; outbound: the action it carries out.
    action: str | None = None
    reason: str | None = None
    sources: list[str] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    withheld: str | None = None
    decided_at: NaiveDatetime | None = None
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True)
