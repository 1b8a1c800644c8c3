"""Old conversations are deleted: nothing a learner wrote is kept longer than it is needed.

A conversation whose last message is older than `SIYU_CONVERSATION_RETENTION_DAYS` goes with
all its messages and the deliveries of its replies. The tick calls `purge` at most once an hour.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, delete, select

from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import utcnow

CV, M, D = tables.conversations.c, tables.messages.c, tables.deliveries.c


def purge(engine: Engine, retention_days: int) -> int:
    """Delete the conversations quiet for more than `retention_days`; how many went."""
    cutoff = utcnow() - timedelta(days=retention_days)
    old = select(CV.id).where(CV.updated_at < cutoff)
    messages = select(M.id).where(M.conversation_id.in_(old))
    with for_writing(engine).begin() as conn:
        conn.execute(delete(tables.deliveries).where(D.message_id.in_(messages)))
        conn.execute(delete(tables.messages).where(M.conversation_id.in_(old)))
        return int(
            conn.execute(delete(tables.conversations).where(CV.updated_at < cutoff)).rowcount
        )
