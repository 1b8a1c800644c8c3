"""Store what a learner wrote: the inbound webhook's payload becomes a message of a conversation.

A platform may deliver one message more than once (it retries when our answer is lost), so
each message is stored once per (account, provider message id): the second delivery finds
the first and is told so. A learner the database does not know yet (they added the assistant
but were never imported) becomes a contact of that channel, bound to nobody.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, Engine, Table, and_, select, update

from worker.store import tables
from worker.store.db import dialect_insert, for_writing
from worker.store.models import Author, ConversationStatus, utcnow

A, CT, CV, M = (tables.accounts.c, tables.contacts.c, tables.conversations.c, tables.messages.c)
# A conversation's `updated_at` (what retention counts from, in days) is moved on by at most
# one inbound message a minute: a learner writing fast costs no extra statement per message.
TOUCH_EVERY = timedelta(minutes=1)
MAX_TEXT = 4000  # characters; longer messages are refused, not cut


class InboundRejected(ValueError):
    """A payload that can never be stored: the reason is returned to the sender (HTTP 400)."""


class InboundPayload(BaseModel):
    """One inbound message as the mock platform (and the generic webhook shape) sends it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    message_id: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, max_length=200)
    sender: str = Field(alias="from", min_length=1, max_length=200)
    text: str = Field(max_length=MAX_TEXT)
    sent_at: AwareDatetime | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    message_id: int
    conversation_id: int
    created: bool  # False: this provider message was stored before (a repeated delivery)


def parse_inbound(body: bytes) -> InboundPayload:
    """The payload of `body`, or `InboundRejected` naming what is wrong with it."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InboundRejected(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InboundRejected("the body must be a JSON object")
    try:
        return InboundPayload.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InboundRejected(f"{where}: {first['msg']}") from None


def record_inbound(engine: Engine, channel: str, payload: InboundPayload) -> Stored:
    """Store `payload` once, in one transaction, with its contact and conversation.

    One read finds the account, the contact and their conversation (a learner who writes
    again: the usual case); only what it did not find is made.
    """
    with for_writing(engine).begin() as conn:
        account_id, contact_id, conversation_id, touched = _known(conn, channel, payload)
        if account_id is None:
            raise InboundRejected(f"no {channel} account named {payload.account!r}")
        if contact_id is None:
            contact_id = _contact(conn, channel, payload.sender)
        if conversation_id is None:
            conversation_id = _conversation(conn, contact_id, account_id)
        key = f"{account_id}:{payload.message_id}"
        sent_at = payload.sent_at.astimezone(UTC).replace(tzinfo=None) if payload.sent_at else None
        now = utcnow()
        inserted = conn.execute(
            dialect_insert(conn)(tables.messages)
            .values(
                conversation_id=conversation_id,
                inbound=True,
                author=Author.LEARNER,
                text=payload.text,
                dedupe_key=key,
                provider_message_id=payload.message_id,
                provider_sent_at=sent_at,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(M.id)
        ).scalar()
        if inserted is None:
            first = conn.execute(select(M.id).where(M.dedupe_key == key)).scalar_one()
            return Stored(int(first), conversation_id, created=False)
        if touched is None or now - touched > TOUCH_EVERY:  # retention counts in days
            conn.execute(
                update(tables.conversations).where(CV.id == conversation_id).values(updated_at=now)
            )
        return Stored(int(inserted), conversation_id, created=True)


def _known(
    conn: Connection, channel: str, payload: InboundPayload
) -> tuple[int | None, int | None, int | None, datetime | None]:
    """(account id, contact id, conversation id, when the conversation was last touched),
    each None if there is none yet."""
    row = conn.execute(
        select(A.id, CT.id, CV.id, CV.updated_at)
        .select_from(tables.accounts)
        .outerjoin(tables.contacts, and_(CT.channel == channel, CT.external_id == payload.sender))
        .outerjoin(tables.conversations, and_(CV.contact_id == CT.id, CV.account_id == A.id))
        .where(A.name == payload.account, A.channel == channel)
    ).first()
    return (None, None, None, None) if row is None else (row[0], row[1], row[2], row[3])


def _contact(conn: Connection, channel: str, external_id: str) -> int:
    """The contact `external_id` of `channel`, made (bound to nobody) if it is new."""
    return _ensure(
        conn,
        tables.contacts,
        {"channel": channel, "external_id": external_id},
        {"name": "", "tags": [], "attrs": {}},
    )


def _conversation(conn: Connection, contact_id: int, account_id: int) -> int:
    return _ensure(
        conn,
        tables.conversations,
        {"contact_id": contact_id, "account_id": account_id},
        {"status": ConversationStatus.ASSISTANT},
    )


def _ensure(conn: Connection, table: Table, key: dict[str, Any], extra: dict[str, Any]) -> int:
    """The id of `table`'s row with `key` (its unique columns), inserted with `extra` if none:
    INSERT ... ON CONFLICT DO NOTHING then a read, so two deliveries at once make one row."""
    now = utcnow()
    conn.execute(
        dialect_insert(conn)(table)
        .values(**key, **extra, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=list(key))
    )
    where = [table.c[name] == value for name, value in key.items()]
    return int(conn.execute(select(table.c.id).where(*where)).scalar_one())
