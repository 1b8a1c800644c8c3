"""The reply task's work: decide what to do with one stored inbound message, and do it.

In order, each step idempotent, so a task that runs twice (acks_late, a crash) does nothing
twice:

1. opt-out: the contact is suppressed (every contact with its external id, on every channel)
   and its `pending` deliveries are skipped at once (`opted_out`); rows a lane already holds
   meet the suppression at its last look before the send (DESIGN 15);
2. handoff: the conversation waits in the human queue (`siyu inbox`) with the reason;
3. the decision (action, reason, sources, any answer the guardrails withheld) is recorded on
   the message by a compare-and-set, and the answer is queued as an outbound message.

A conversation already waiting for a person gets no automatic answer: only an opt-out still
applies. Outbound messages are `queued`: their delivery through the account's lane is the
next step of issue 9 (item 6) and is not built yet.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, desc, select, update

from worker.config import Settings
from worker.replies.model import Action, Decision, Question, Responder, Turn
from worker.replies.pipeline import decide
from worker.replies.responder import RetrievalResponder
from worker.replies.retrieval import Retriever
from worker.services.suppressions import suppress_contacts
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import ConversationStatus, DeliveryState, utcnow

M, CV, CT, A = tables.messages.c, tables.conversations.c, tables.contacts.c, tables.accounts.c
D, R, C = tables.deliveries.c, tables.campaign_runs.c, tables.campaigns.c
QUEUED = "queued"  # an outbound message not yet handed to the account's lane


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


def handle_inbound(engine: Engine, settings: Settings, message_id: int) -> Decision | None:
    """Decide and apply; None when the message was decided before (or does not exist)."""
    inbound = _load(engine, message_id)
    if inbound is None:
        return None
    question = Question(
        text=inbound.text,
        account_name=inbound.account,
        history=_history(engine, inbound, settings.llm_history_turns),
        variables=_campaign_variables(engine, inbound),
    )
    decision = decide(question, _retriever(settings.templates_dir), _responder(settings))
    if inbound.waiting_for_person and decision.action != Action.OPT_OUT:
        decision = Decision(
            Action.HANDOFF, "", f"waiting for a person; the assistant would have: {decision.reason}"
        )
    if decision.action == Action.OPT_OUT:
        suppress_contacts(engine, [inbound.external_id], reason="opted_out")
        _skip_pending(engine, inbound.external_id)
    return decision if _record(engine, inbound, decision) else None


def _load(engine: Engine, message_id: int) -> Inbound | None:
    stmt = (
        select(M.id, CV.id, CT.id, A.id, CT.external_id, A.name, M.text, CV.status)
        .join(tables.conversations, CV.id == M.conversation_id)
        .join(tables.contacts, CT.id == CV.contact_id)
        .join(tables.accounts, A.id == CV.account_id)
        .where(M.id == message_id, M.inbound.is_(True), M.decided_at.is_(None))
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return Inbound(*row[:7], waiting_for_person=row[7] == ConversationStatus.HUMAN)


def _history(engine: Engine, inbound: Inbound, turns: int) -> tuple[Turn, ...]:
    """The conversation's last `turns` messages before this one, oldest first."""
    stmt = (
        select(M.inbound, M.text)
        .where(M.conversation_id == inbound.conversation_id, M.id < inbound.message_id)
        .order_by(desc(M.id))
        .limit(max(turns, 0))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return tuple(Turn(bool(r[0]), r[1]) for r in reversed(rows))


def _campaign_variables(engine: Engine, inbound: Inbound) -> dict[str, str]:
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
    with engine.connect() as conn:
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


def _record(engine: Engine, inbound: Inbound, decision: Decision) -> bool:
    """Record `decision` once (compare-and-set on `decided_at`); False if already recorded."""
    now = utcnow()
    with for_writing(engine).begin() as conn:
        recorded = conn.execute(
            update(tables.messages)
            .where(M.id == inbound.message_id, M.decided_at.is_(None))
            .values(
                action=str(decision.action),
                reason=decision.reason,
                sources=list(decision.sources),
                withheld=decision.withheld,
                decided_at=now,
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
            conn.execute(
                tables.messages.insert().values(
                    conversation_id=inbound.conversation_id,
                    inbound=False,
                    author="assistant",
                    text=decision.text,
                    state=QUEUED,
                    created_at=now,
                )
            )
    return True


@functools.cache
def _retriever(templates_dir: Path) -> Retriever:
    """One per process and knowledge folder: it re-reads the files when they change."""
    return Retriever.for_templates(templates_dir)


def _responder(settings: Settings) -> Responder:
    from worker.replies.llm import llm_responder

    return llm_responder(settings) or RetrievalResponder()
