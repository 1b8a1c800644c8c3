"""The reply drain's work: decide what to do with stored inbound messages, and do it.

Messages are decided in batches (`handle_batch`, the oldest undecided first; `drain` runs
it), in this order, each step idempotent, so a batch that runs twice (acks_late, a crash, two
drains) does nothing twice:

1. opt-out: the contact is suppressed (every contact with its external id, on every channel)
   and its `pending` deliveries are skipped at once (`opted_out`); rows a lane already holds
   meet the suppression at its last look before the send (DESIGN 15);
2. handoff: the conversation waits in the human queue (`siyu inbox`) with the reason;
3. the decision (action, reason, sources, any answer the guardrails withheld) is recorded on
   the message by a compare-and-set, and in the same transaction the answer is queued as an
   outbound message with its delivery (`outgoing.queue_replies`), due after a human-like
   delay: one answer per inbound message, however often it is decided.

A conversation already waiting for a person gets no automatic answer, and neither does a
contact who opted out earlier (a person decides whether to answer them): only an opt-out
still applies. Within a batch, a message sees the handoffs and opt-outs of the messages
before it, as it would one at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    desc,
    exists,
    func,
    select,
    true,
    union_all,
    update,
)

from worker.config import Settings
from worker.replies.model import Action, Decision, Question, Responder, Turn
from worker.replies.outgoing import Reply, queue_replies, reply_delay_s
from worker.replies.pipeline import decide
from worker.replies.responder import RetrievalResponder
from worker.replies.retrieval import Retriever
from worker.services.suppressions import suppress_contacts
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import Author, ConversationStatus, DeliveryState, utcnow

M, CV, CT, A = tables.messages.c, tables.conversations.c, tables.contacts.c, tables.accounts.c
D, R, C = tables.deliveries.c, tables.campaign_runs.c, tables.campaigns.c


BATCH = 32  # inbound messages one drain step decides together
LLM_THREADS = 8  # decisions of a batch that wait for the LLM at once


@dataclass(frozen=True, slots=True)
class Handled:
    """A recorded decision; `reply_in_s` is when its answer is due (None: no answer)."""

    message_id: int
    decision: Decision
    account_id: int
    reply_in_s: float | None


@dataclass(frozen=True, slots=True)
class Batch:
    """What one step did: how many undecided messages it loaded, and the decisions it
    recorded (fewer when another process recorded some first)."""

    loaded: int
    handled: list[Handled]


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
    variables: dict[str, str]


@dataclass(frozen=True, slots=True)
class Decided:
    inbound: Inbound
    decision: Decision
    delay_s: float | None


def handle_inbound(engine: Engine, settings: Settings, message_id: int) -> Handled | None:
    """Decide and apply one message; None when it was decided before (or does not exist)."""
    handled = handle_batch(engine, settings, [message_id]).handled
    return handled[0] if handled else None


def handle_batch(
    engine: Engine, settings: Settings, ids: Sequence[int] | None = None, limit: int = BATCH
) -> Batch:
    """Decide and apply the undecided inbound messages `ids` (None: the oldest `limit`).

    A few statements per batch, not per message: one read for the messages (with their
    campaign variables), one for their conversations' recent history; one transaction
    records every decision and queues every answer.
    """
    with engine.connect() as conn:  # one connection for the reads: each checkout costs a trip
        inbounds = _load(conn, ids, limit)
        if not inbounds:
            return Batch(0, [])
        histories = _histories(conn, inbounds, settings.llm_history_turns)
    questions = [
        Question(
            text=i.text,
            account_name=i.account,
            history=histories.get(i.message_id, ()),
            variables=i.variables,
        )
        for i in inbounds
    ]
    decided = _apply_state(settings, inbounds, _decide_all(settings, questions))
    opted = sorted({d.inbound.external_id for d in decided if d.decision.action == Action.OPT_OUT})
    if opted:
        suppress_contacts(engine, opted, reason="opted_out")
        _skip_pending(engine, opted)
    recorded = _record(engine, decided)
    handled = [
        Handled(d.inbound.message_id, d.decision, d.inbound.account_id, d.delay_s)
        for d in decided
        if d.inbound.message_id in recorded
    ]
    return Batch(len(inbounds), handled)


def _decide_all(settings: Settings, questions: list[Question]) -> list[Decision]:
    """Each question's decision, in order. The retrieval responder works on the CPU, so one
    after the other; an LLM's answers are awaited side by side."""
    retriever, responder = _retriever(settings.templates_dir), _responder(settings)
    if isinstance(responder, RetrievalResponder) or len(questions) == 1:
        return [decide(q, retriever, responder) for q in questions]
    with ThreadPoolExecutor(min(LLM_THREADS, len(questions))) as pool:
        return list(pool.map(lambda q: decide(q, retriever, responder), questions))


def _apply_state(
    settings: Settings, inbounds: list[Inbound], decisions: list[Decision]
) -> list[Decided]:
    """Only an opt-out applies to a conversation waiting for a person or a contact who opted
    out, counting the handoffs and opt-outs decided earlier in the same batch."""
    handed: set[int] = set()
    opted: set[str] = set()
    out: list[Decided] = []
    for inbound, proposed in zip(inbounds, decisions, strict=True):
        decision = proposed
        waiting = inbound.waiting_for_person or inbound.conversation_id in handed
        if decision.action != Action.OPT_OUT and (
            waiting or inbound.opted_out or inbound.external_id in opted
        ):
            why = "waiting for a person" if waiting else "opted out earlier"
            decision = Decision(
                Action.HANDOFF, "", f"{why}; the assistant would have: {decision.reason}"
            )
        if decision.action == Action.OPT_OUT:
            opted.add(inbound.external_id)
        elif decision.action == Action.HANDOFF:
            handed.add(inbound.conversation_id)
        delay_s = reply_delay_s(settings, inbound.text, decision.text) if decision.text else None
        out.append(Decided(inbound, decision, delay_s))
    return out


def _load(conn: Connection, ids: Sequence[int] | None, limit: int = BATCH) -> list[Inbound]:
    """The undecided inbound messages `ids` (None: the oldest `limit`), oldest first, each
    with the --var values of the last campaign message its account sent that learner."""
    opted_out = exists().where(tables.suppressions.c.contact_id == CT.id)
    variables = (
        select(C.vars)
        .select_from(tables.deliveries)
        .join(tables.campaign_runs, R.id == D.run_id)
        .join(tables.campaigns, C.id == R.campaign_id)
        .where(D.contact_id == CT.id, D.account_id == A.id, D.state == DeliveryState.SENT)
        .order_by(desc(D.sent_at), desc(D.id))
        .limit(1)
        .scalar_subquery()
    )
    stmt = (
        select(M.id, CV.id, CT.id, A.id, CT.external_id, A.name, M.text, CV.status, opted_out,
               variables)
        .join(tables.conversations, CV.id == M.conversation_id)
        .join(tables.contacts, CT.id == CV.contact_id)
        .join(tables.accounts, A.id == CV.account_id)
        .where(M.decided_at.is_(None), M.inbound == true())
        .order_by(M.id)
    )  # fmt: skip
    stmt = stmt.where(M.id.in_(list(ids))) if ids is not None else stmt.limit(limit)
    return [
        Inbound(
            message,
            conversation,
            contact,
            account_id,
            external_id,
            account,
            text,
            waiting_for_person=status == ConversationStatus.HUMAN,
            opted_out=bool(out),
            variables=dict(found or {}),
        )
        for message, conversation, contact, account_id, external_id, account, text, status, out,
            found in conn.execute(stmt)
    ]  # fmt: skip


def _histories(
    conn: Connection, inbounds: list[Inbound], turns: int
) -> dict[int, tuple[Turn, ...]]:
    """Per message, its conversation's last `turns` messages before it, oldest first.

    One read for the whole batch: every message of the batch's conversations from its oldest
    message on, and the last `turns` of each conversation before that.
    """
    if turns <= 0:
        return {}
    conversations = sorted({i.conversation_id for i in inbounds})
    oldest = min(i.message_id for i in inbounds)
    newest = max(i.message_id for i in inbounds)
    rank = func.row_number().over(partition_by=M.conversation_id, order_by=desc(M.id))
    before = (
        select(M.conversation_id, M.id, M.inbound, M.text, rank.label("rank"))
        .where(M.conversation_id.in_(conversations), M.id < oldest)
        .subquery()
    )
    stmt = union_all(
        select(before.c.conversation_id, before.c.id, before.c.inbound, before.c.text).where(
            before.c.rank <= turns
        ),
        select(M.conversation_id, M.id, M.inbound, M.text).where(
            M.conversation_id.in_(conversations), M.id >= oldest, M.id < newest
        ),
    )
    by_conversation: dict[int, list[tuple[int, bool, str]]] = {}
    for conversation, message_id, inbound, text in conn.execute(stmt):
        by_conversation.setdefault(conversation, []).append((message_id, bool(inbound), text))
    out: dict[int, tuple[Turn, ...]] = {}
    for i in inbounds:
        thread = sorted(
            m for m in by_conversation.get(i.conversation_id, []) if m[0] < i.message_id
        )
        out[i.message_id] = tuple(Turn(inbound, text) for _, inbound, text in thread[-turns:])
    return out


def _skip_pending(engine: Engine, external_ids: Sequence[str]) -> None:
    """Skip every delivery to these people not yet taken by a lane: it will never be sent."""
    contacts = select(CT.id).where(CT.external_id.in_(list(external_ids)))
    with for_writing(engine).begin() as conn:
        conn.execute(
            update(tables.deliveries)
            .where(D.contact_id.in_(contacts), D.state == DeliveryState.PENDING)
            .values(state=DeliveryState.SKIPPED, reason="opted_out", updated_at=utcnow())
        )


def _record(engine: Engine, decided: Sequence[Decided]) -> set[int]:
    """Record each decision once and queue its answer, in one transaction; the ids of the
    messages whose decision this call recorded.

    `decided_at` is set by a compare-and-set first, so a message another process decided in
    the meantime keeps that decision and gets no second answer.
    """
    if not decided:
        return set()
    now = utcnow()
    with for_writing(engine).begin() as conn:
        recorded = set(
            conn.execute(
                update(tables.messages)
                .where(M.id.in_([d.inbound.message_id for d in decided]), M.decided_at.is_(None))
                .values(decided_at=now)
                .returning(M.id)
            ).scalars()
        )
        ours = [d for d in decided if d.inbound.message_id in recorded]
        if not ours:
            return recorded
        conn.execute(
            update(tables.messages)
            .where(M.id == bindparam("b_id"))
            .values(
                action=bindparam("b_action"),
                reason=bindparam("b_reason"),
                sources=bindparam("b_sources"),
                withheld=bindparam("b_withheld"),
            ),
            [
                {"b_id": d.inbound.message_id, "b_action": str(d.decision.action),
                 "b_reason": d.decision.reason, "b_sources": list(d.decision.sources),
                 "b_withheld": d.decision.withheld}
                for d in ours
            ],
        )  # fmt: skip
        handoffs = [d for d in ours if d.decision.action == Action.HANDOFF]
        if handoffs:  # a conversation already waiting keeps its reason: the first one wins
            conn.execute(
                update(tables.conversations)
                .where(CV.id == bindparam("b_id"), CV.status != ConversationStatus.HUMAN)
                .values(status=ConversationStatus.HUMAN, handoff_reason=bindparam("b_reason")),
                [{"b_id": d.inbound.conversation_id, "b_reason": d.decision.reason}
                 for d in handoffs],
            )  # fmt: skip
        queue_replies(
            conn,
            [
                Reply(d.inbound.conversation_id, d.inbound.contact_id, d.inbound.account_id,
                      d.decision.text, Author.ASSISTANT, str(d.decision.action), d.delay_s or 0.0)
                for d in ours
                if d.decision.text
            ],
        )  # fmt: skip
    return recorded


@functools.cache
def _retriever(templates_dir: Path) -> Retriever:
    """One per process and knowledge folder: it re-reads the files when they change."""
    return Retriever.for_templates(templates_dir)


def _responder(settings: Settings) -> Responder:
    from worker.replies.llm import llm_responder

    return llm_responder(settings) or RetrievalResponder()
