"""Replies leave as deliveries, through the account the learner wrote to.

An answer is an outbound message plus one delivery row carrying it (`message_id`, no run),
written in the caller's transaction, so a decision and its reply are stored together or not
at all. The account's lane claims reply rows before any campaign send and sends them under
the same limiter and the same exactly-once state machine; the platform's idempotency key is
the message's (`compose.idempotency_key`). Recipient marketing caps do not count replies.

An automatic answer waits as long as a person would take to read the question and type the
answer (`reply_delay_s`); an operator's answer (`siyu reply`) goes at once.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import Connection

from worker.config import Settings
from worker.store import tables
from worker.store.models import Author, DeliveryState, utcnow

JITTER = 0.15  # a delay varies by up to this share either way, as a person's would


def reply_delay_s(
    settings: Settings, heard: str, answer: str, rng: random.Random | None = None
) -> float:
    """Reading `heard` plus typing `answer`, from `reply_delay_min_s` to `reply_delay_max_s`."""
    if settings.reply_delay_max_s <= 0:
        return 0.0
    human = len(heard) / settings.reply_read_cps + len(answer) / settings.reply_typing_cps
    human *= 1 + JITTER * (2 * (rng or random).random() - 1)
    return min(settings.reply_delay_max_s, settings.reply_delay_min_s + human)


def queue_reply(
    conn: Connection,
    *,
    conversation_id: int,
    contact_id: int,
    account_id: int,
    text: str,
    author: Author,
    action: str | None = None,
    reason: str | None = None,
    delay_s: float = 0.0,
) -> int:
    """Store an outbound message and its pending delivery; the message's id.

    `action` is the decision it carries out (an opt-out's confirmation is `opt_out`, which
    is the only automatic answer that reaches a suppressed contact).
    """
    now = utcnow()
    message_id = conn.execute(
        tables.messages.insert()
        .values(
            conversation_id=conversation_id,
            inbound=False,
            author=str(author),
            text=text,
            action=action,
            reason=reason,
            created_at=now,
        )
        .returning(tables.messages.c.id)
    ).scalar_one()
    conn.execute(
        tables.deliveries.insert().values(
            message_id=message_id,
            contact_id=contact_id,
            account_id=account_id,
            state=DeliveryState.PENDING,
            attempts=0,
            not_before=now + timedelta(seconds=delay_s) if delay_s > 0 else None,
            created_at=now,
            updated_at=now,
        )
    )
    conn.execute(
        tables.conversations.update()
        .where(tables.conversations.c.id == conversation_id)
        .values(updated_at=now)
    )
    return int(message_id)
