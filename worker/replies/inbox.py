"""What operators read: the human queue (`siyu inbox`) and whole threads (`conversations show`).

Every automatic decision is shown with its reason and the knowledge it rested on, so an
answer can be explained afterwards. Times are ISO 8601 in the receiving account's zone.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, desc, select

from worker.campaigns.timeparse import local_iso, zone
from worker.errors import NotFound
from worker.store import tables
from worker.store.models import ConversationStatus

M, CV, CT, A = tables.messages.c, tables.conversations.c, tables.contacts.c, tables.accounts.c
D = tables.deliveries.c
LAST = 3  # messages of each waiting conversation shown in the inbox


def inbox(engine: Engine) -> list[dict[str, Any]]:
    """Conversations waiting for a person, the one quiet the longest first."""
    stmt = (
        select(CV.id, CT.external_id, CT.name, A.name, A.tz, CV.handoff_reason, CV.updated_at)
        .join(tables.contacts, CT.id == CV.contact_id)
        .join(tables.accounts, A.id == CV.account_id)
        .where(CV.status == ConversationStatus.HUMAN)
        .order_by(CV.updated_at, CV.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        out = []
        for cid, external_id, name, account, tz_name, reason, updated in rows:
            tz = zone(tz_name)
            last = conn.execute(
                select(M.inbound, M.author, M.text, M.created_at)
                .where(M.conversation_id == cid)
                .order_by(desc(M.id))
                .limit(LAST)
            ).all()
            out.append(
                {
                    "conversation": cid,
                    "contact": external_id,
                    "name": name or "",
                    "account": account,
                    "why": reason,
                    "last_message_at": local_iso(updated, tz),
                    "last_messages": [_brief(m, tz) for m in reversed(last)],
                }
            )
    return out


def thread(engine: Engine, external_id: str) -> list[dict[str, Any]]:
    """Every conversation of the contact(s) with this external id, each message in order."""
    stmt = (
        select(CV.id, CT.channel, A.name, A.tz, CV.status, CV.handoff_reason)
        .join(tables.contacts, CT.id == CV.contact_id)
        .join(tables.accounts, A.id == CV.account_id)
        .where(CT.external_id == external_id)
        .order_by(CV.id)
    )
    with engine.connect() as conn:
        conversations = conn.execute(stmt).all()
        if not conversations:
            raise NotFound(f"no conversation with {external_id!r}")
        out = []
        for cid, channel, account, tz_name, status, reason in conversations:
            tz = zone(tz_name)
            messages = conn.execute(
                select(
                    M.inbound, M.author, M.text, M.created_at, M.action, M.reason, M.sources,
                    M.withheld, D.state, D.reason.label("delivery_reason"), D.sent_at,
                )
                .outerjoin(tables.deliveries, D.message_id == M.id)
                .where(M.conversation_id == cid)
                .order_by(M.id)
            ).all()  # fmt: skip
            out.append(
                {
                    "conversation": cid,
                    "channel": channel,
                    "account": account,
                    "status": status,
                    "why": reason if status == ConversationStatus.HUMAN else None,
                    "messages": [_message(m, tz) for m in messages],
                }
            )
    return out


def _brief(row: Any, tz: ZoneInfo) -> dict[str, Any]:
    return {"at": local_iso(row.created_at, tz), "from": row.author, "text": row.text}


def _message(row: Any, tz: ZoneInfo) -> dict[str, Any]:
    out = _brief(row, tz)
    if row.inbound:
        out["decision"] = row.action  # None: not decided yet
        out["reason"] = row.reason
        out["sources"] = list(row.sources or [])
        out["withheld"] = row.withheld
    else:  # how its delivery through the account's lane went
        out["state"] = row.state
        if row.delivery_reason:
            out["state_reason"] = row.delivery_reason
        if row.sent_at is not None:
            out["sent_at"] = local_iso(row.sent_at, tz)
    return out
