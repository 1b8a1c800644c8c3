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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, insert, update

from worker.config import Settings
from worker.store import tables
from worker.store.models import Author, DeliveryState, utcnow

M, CV = tables.messages.c, tables.conversations.c
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


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to queue: its text, who wrote it, the decision it carries out (an opt-out's
    confirmation is `opt_out`, the only automatic answer that reaches a suppressed contact)
    and how long it waits before it may go."""

    conversation_id: int
    contact_id: int
    account_id: int
    text: str
    author: Author
    action: str | None = None
    delay_s: float = 0.0


def queue_replies(conn: Connection, replies: Sequence[Reply]) -> list[int]:
    """Store each reply's outbound message and pending delivery; the messages' ids, in order.

    Three statements whatever the number of replies (the reply drain queues a batch).
    """
    if not replies:
        return []
    now = utcnow()
    message_ids = list(
        conn.execute(
            insert(tables.messages).returning(M.id, sort_by_parameter_order=True),
            [
                {"conversation_id": r.conversation_id, "inbound": False,
                 "author": str(r.author), "text": r.text, "action": r.action, "created_at": now}
                for r in replies
            ],
        ).scalars()
    )  # fmt: skip
    conn.execute(
        insert(tables.deliveries),
        [
            {"message_id": message_id, "contact_id": r.contact_id, "account_id": r.account_id,
             "state": DeliveryState.PENDING, "attempts": 0,
             "not_before": now + timedelta(seconds=r.delay_s) if r.delay_s > 0 else None,
             "created_at": now, "updated_at": now}
            for message_id, r in zip(message_ids, replies, strict=True)
        ],
    )  # fmt: skip
    conversations = sorted({r.conversation_id for r in replies})
    conn.execute(
        update(tables.conversations).where(CV.id.in_(conversations)).values(updated_at=now)
    )
    return [int(m) for m in message_ids]


def queue_reply(conn: Connection, reply: Reply) -> int:
    """`queue_replies` for one reply: its message's id."""
    [message_id] = queue_replies(conn, [reply])
    return message_id
