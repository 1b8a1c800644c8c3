"""The reply task's work: decide what to do with one stored inbound message, and do it.

In order, each step idempotent, so a task that runs twice (acks_late, a crash) does nothing
twice:

1. opt-out: the contact is suppressed (every contact with its external id, on every channel)
   and its `pending` deliveries are skipped at once (`opted_out`); rows a lane already holds
   meet the suppression at its last look before the send (DESIGN 15);
2. handoff: the conversation waits in the human queue (`siyu inbox`) with the reason;
3. the decision (action, reason, sources, any answer the guardrails withheld) is recorded on
   the message by a compare-and-set, and in the same transaction the answer is queued as an
   outbound message with its delivery (`outgoing.queue_reply`), due after a human-like delay:
   one answer per inbound message, however often the task runs.

A conversation already waiting for a person gets no automatic answer, and neither does a
contact who opted out earlier (a person decides whether to answer them): only an opt-out
still applies.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, desc, exists, select, update

from worker.config import Settings
from worker.replies.model import Action, Decision, Question, Responder, Turn
from worker.replies.outgoing import queue_reply, reply_delay_s
from worker.replies.pipeline import decide
from worker.replies.responder import RetrievalResponder
from worker.replies.retrieval import Retriever
from worker.services.suppressions import suppress_contacts
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import Author, ConversationStatus, DeliveryState, utcnow

M, CV, CT, A = tables.messages.c, tables.conversations.c, tables.contacts.c, tables.accounts.c
D, R, C = tables.deliveries.c, tables.campaign_runs.c, tables.campaigns.c


@dataclass(frozen=True, slots=True)
class Handled:
    """A recorded decision; `reply_in_s` is when its answer is due (None: no answer)."""

    decision: Decision
    account_id: int
    reply_in_s: float | None


@dataclass(frozen=True, slots=True)
class Inbound:
    message_id: int
    conversation_id: int
    contact_id: int
    account_id: int
    external_id: str
    account: str
    text: str
    waiting_for_person: bool
    opted_out: bool


def handle_inbound(engine: Engine, settings: Settings, message_id: int) -> Handled | None:
    """Decide and apply; None when the message was decided before (or does not exist)."""
    with engine.connect() as conn:  # one connection for the reads: each checkout costs a trip
        inbound = _load(conn, message_id)
        if inbound is None:
            return None
        question = Question(
            text=inbound.text,
            account_name=inbound.account,
            history=_history(conn, inbound, settings.llm_history_turns),
            variables=_campaign_variables(conn, inbound),
        )
    decision = decide(question, _retriever(settings.templates_dir), _responder(settings))
    if decision.action != Action.OPT_OUT and (inbound.waiting_for_person or inbound.opted_out):
        why = "waiting for a person" if inbound.waiting_for_person else "opted out earlier"
        decision = Decision(
            Action.HANDOFF, "", f"{why}; the assistant would have: {decision.reason}"
        )
    if decision.action == Action.OPT_OUT:
        suppress_contacts(engine, [inbound.external_id], reason="opted_out")
        _skip_pending(engine, inbound.external_id)
    delay_s = reply_delay_s(settings, inbound.text, decision.text) if decision.text else None
    if not _record(engine, inbound, decision, delay_s or 0.0):
        return None
    return Handled(decision, inbound.account_id, delay_s)


def _load(conn: Connection, message_id: int) -> Inbound | None:
    opted_out = exists().where(tables.suppressions.c.contact_id == CT.id)
    stmt = (
        select(M.id, CV.id, CT.id, A.id, CT.external_id, A.name, M.text, CV.status, opted_out)
        .join(tables.conversations, CV.id == M.conversation_id)
        .join(tables.contacts, CT.id == CV.contact_id)
        .join(tables.accounts, A.id == CV.account_id)
        .where(M.id == message_id, M.inbound.is_(True), M.decided_at.is_(None))
    )
    row = conn.execute(stmt).first()
    if row is None:
        return None
    message, conversation, contact, account_id, external_id, account, text, status, out = row
    return Inbound(
        message,
        conversation,
        contact,
        account_id,
        external_id,
        account,
        text,
        waiting_for_person=status == ConversationStatus.HUMAN,
        opted_out=bool(out),
    )


def _history(conn: Connection, inbound: Inbound, turns: int) -> tuple[Turn, ...]:
    """The conversation's last `turns` messages before this one, oldest first."""
    stmt = (
        select(M.inbound, M.text)
        .where(M.conversation_id == inbound.conversation_id, M.id < inbound.message_id)
        .order_by(desc(M.id))
        .limit(max(turns, 0))
    )
    rows = conn.execute(stmt).all()
    return tuple(Turn(bool(r[0]), r[1]) for r in reversed(rows))


def _campaign_variables(conn: Connection, inbound: Inbound) -> dict[str, str]:
    """The --var values of the last campaign message this account sent this learner."""
    stmt = (
        select(C.vars)
        .select_from(tables.deliveries)
        .join(tables.campaign_runs, R.id == D.run_id)
        .join(tables.campaigns, C.id == R.campaign_id)
        .where(
            D.contact_id == inbound.contact_id,
            D.account_id == inbound.account_id,
            D.state == DeliveryState.SENT,
        )
        .order_by(desc(D.sent_at))
        .limit(1)
    )
    found = conn.execute(stmt).scalar()
    return dict(found or {})


def _skip_pending(engine: Engine, external_id: str) -> None:
    """Skip every delivery to this person not yet taken by a lane: it will never be sent."""
    contacts = select(CT.id).where(CT.external_id == external_id).scalar_subquery()
    with for_writing(engine).begin() as conn:
        conn.execute(
            update(tables.deliveries)
            .where(D.contact_id.in_(contacts), D.state == DeliveryState.PENDING)
            .values(state=DeliveryState.SKIPPED, reason="opted_out", updated_at=utcnow())
        )


def _record(engine: Engine, inbound: Inbound, decision: Decision, delay_s: float) -> bool:
    """Record `decision` once (compare-and-set on `decided_at`) and queue its answer in the
    same transaction; False if already recorded."""
    with for_writing(engine).begin() as conn:
        recorded = conn.execute(
            update(tables.messages)
            .where(M.id == inbound.message_id, M.decided_at.is_(None))
            .values(
                action=str(decision.action),
                reason=decision.reason,
                sources=list(decision.sources),
                withheld=decision.withheld,
                decided_at=utcnow(),
            )
        ).rowcount
        if not recorded:
            return False
        if decision.action == Action.HANDOFF:  # a conversation already waiting keeps its reason
            conn.execute(
                update(tables.conversations)
                .where(CV.id == inbound.conversation_id, CV.status != ConversationStatus.HUMAN)
                .values(status=ConversationStatus.HUMAN, handoff_reason=decision.reason)
            )
        if decision.text:
            queue_reply(
                conn,
                conversation_id=inbound.conversation_id,
                contact_id=inbound.contact_id,
                account_id=inbound.account_id,
                text=decision.text,
                author=Author.ASSISTANT,
                action=str(decision.action),
                delay_s=delay_s,
            )
    return True


@functools.cache
def _retriever(templates_dir: Path) -> Retriever:
    """One per process and knowledge folder: it re-reads the files when they change."""
    return Retriever.for_templates(templates_dir)


def _responder(settings: Settings) -> Responder:
    from worker.replies.llm import llm_responder

    return llm_responder(settings) or RetrievalResponder()
