"""Request and response models of segments, accounts, contacts, suppressions and the inbox:
the CLI's `--json` documents, typed."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from worker.api.operator.base import Body, Document

# --- segments ---------------------------------------------------------------------------


class SegmentCreate(Body):
    """`segments add`: the expression is checked against the contacts before it is stored."""

    name: str
    where: str = Field(description='e.g. "tag = vip and city = 上海"')
    allow_unknown: bool = Field(False, description="Keep a field or value no contact has yet")


class Segment(Document):
    """`segments show --json`: the expression and the current member count."""

    name: str
    where: str
    members: int


class SegmentCreated(Segment):
    notes: list[str] = Field(description="What `allow_unknown` let through")


class SegmentCount(Document):
    """The live member count of an expression that is not saved."""

    where: str
    members: int
    notes: list[str]


# --- accounts ---------------------------------------------------------------------------


class Account(Document):
    """An item of `accounts list --json`: the account's health."""

    name: str
    channel: str
    policy: str | None
    tz: str
    state: str = Field(description="active | cooldown | paused | banned")
    state_reason: str | None
    cooldown_until: str | None = Field(description="ISO 8601 UTC")
    rate_share: float = Field(description="Share of its policy's rate it runs at now")
    sent_today: int = Field(description="Sent on the account's local calendar day")


# --- contacts and suppressions ----------------------------------------------------------


class Contact(Document):
    external_id: str
    name: str
    channel: str
    tags: list[str]
    attrs: dict[str, str]
    owner: str | None


class Contacts(Document):
    total: int = Field(description="Every matching contact, not only those listed")
    items: list[Contact]


class RejectedRow(Document):
    line: int
    message: str


class ImportReport(Document):
    """`contacts import --json`: what the import did (a dry run: would do)."""

    file: str
    channel: str
    dry_run: bool
    rows: int
    created: int
    updated: int
    rejected: list[RejectedRow]


class Suppression(Document):
    external_id: str
    channel: str
    reason: str
    created_at: str


class SuppressRequest(Body):
    """`contacts suppress`: all or nothing; an id that names no contact refuses the request."""

    external_ids: list[str] = Field(min_length=1)
    channel: str | None = Field(None, description="Only contacts of this channel")
    reason: str | None = Field(None, description="Free text; default opted_out")


class Suppressed(Document):
    external_ids: int
    contacts: int
    already: int
    reason_updated: int


class Unsuppressed(Document):
    removed: int
    not_suppressed: list[str]
    unknown: list[str]


# --- the human inbox --------------------------------------------------------------------


class Said(Document):
    """A message of a thread; `from` is its author (learner, assistant, human...)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    at: str
    from_: str = Field(alias="from")
    text: str


class Waiting(Document):
    """An item of `siyu inbox --json`: a conversation waiting for a person."""

    conversation: int
    contact: str
    name: str
    account: str
    why: str | None
    last_message_at: str
    last_messages: list[Said]


class ThreadMessage(Said):
    """Inbound: `decision`, `reason`, `sources`, `withheld`; outbound: its delivery `state`."""

    decision: str | None = None
    reason: str | None = None
    sources: list[str] | None = None
    withheld: str | None = None
    state: str | None = None
    state_reason: str | None = None
    sent_at: str | None = None


class Thread(Document):
    """A conversation as `conversations show --json` gives it."""

    conversation: int
    channel: str
    account: str
    status: str
    why: str | None
    messages: list[ThreadMessage]


class ReplyRequest(Body):
    text: str = Field(description="What to send; it goes ahead of campaign sends")


class Replied(Document):
    """What `siyu reply` said: queued, through which account, and anything to read."""

    conversation: int
    message_id: int
    contact: str
    account: str
    handoff_closed: bool
    message: str
    warnings: list[str]
