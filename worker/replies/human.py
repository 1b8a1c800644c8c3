"""`siyu reply`: a person answers a conversation through the account the learner wrote to.

The answer is queued like the assistant's (`outgoing.queue_reply`), without the human-like
delay (a person already took the time), and the conversation goes back to the assistant: the
handoff is closed. A person's answer reaches a contact who opted out earlier, because a person
chose to write it; the assistant's would not.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select, update

from worker.channels.registry import channel_class
from worker.dispatch.kick import kick_lane
from worker.errors import NotFound, UserError
from worker.replies.outgoing import Reply, queue_reply
from worker.runtime import Context
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import AccountState, Author, ConversationStatus

CV, CT, A = tables.conversations.c, tables.contacts.c, tables.accounts.c


@dataclass(frozen=True, slots=True)
class HumanReply:
    message_id: int
    conversation_id: int
    contact: str
    account: str
    account_state: str
    was_waiting: bool
    opted_out: bool

    def summary(self) -> str:
        """What `siyu reply` (and the API) confirms."""
        closed = "; the handoff is closed" if self.was_waiting else ""
        where = f"conversation #{self.conversation_id}"
        return f"reply to {self.contact} via {self.account} queued ({where}){closed}"


def conversation_id(ref: str) -> int:
    """`12` or `#12` (as `siyu inbox` shows it) -> 12."""
    digits = ref.strip().removeprefix("#")
    if not digits.isdigit():
        raise UserError(
            f"CONVERSATION is the number `siyu inbox` shows, such as 12 or #12; got {ref!r}"
        )
    return int(digits)


def reply_as_person(ctx: Context, ref: str, text: str) -> HumanReply:
    """Queue `text` to the conversation's learner, close its handoff, wake the account's lane."""
    cid = conversation_id(ref)
    text = text.strip()
    if not text:
        raise UserError("the reply is empty: give the text to send")
    opted_out = exists().where(tables.suppressions.c.contact_id == CT.id)
    stmt = (
        select(
            CT.id, CT.external_id, A.id, A.name, A.channel, A.config, A.state, CV.status, opted_out
        )
        .select_from(tables.conversations)
        .join(tables.contacts, CT.id == CV.contact_id)
        .join(tables.accounts, A.id == CV.account_id)
        .where(CV.id == cid)
    )
    with for_writing(ctx.engine).begin() as conn:
        row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"no conversation #{cid}; `siyu inbox` lists those waiting")
        contact_id, external_id, account_id, account, channel, config, state, status, suppressed = (
            row
        )
        limit = channel_class(channel).text_limit(config or {})
        if len(text) > limit:
            raise UserError(
                f"the reply is {len(text):,} characters; channel {channel!r} allows {limit:,}"
            )
        message_id = queue_reply(conn, Reply(cid, contact_id, account_id, text, Author.HUMAN))
        conn.execute(
            update(tables.conversations)
            .where(CV.id == cid)
            .values(status=ConversationStatus.ASSISTANT, handoff_reason=None)
        )
    kick_lane(ctx, account_id)
    return HumanReply(
        message_id,
        cid,
        external_id,
        account,
        state,
        was_waiting=status == ConversationStatus.HUMAN,
        opted_out=bool(suppressed),
    )


def reply_notes(reply: HumanReply) -> list[str]:
    """Warnings an operator should read with the confirmation."""
    notes = []
    if reply.account_state != AccountState.ACTIVE:
        notes.append(
            f"account {reply.account} is {reply.account_state}: "
            "the reply waits until it can send again"
        )
    if reply.opted_out:
        notes.append(f"{reply.contact} opted out; your reply goes because a person wrote it")
    return notes
