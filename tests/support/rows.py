"""Reading and nudging delivery rows in tests."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select, update

from worker.runtime import Context
from worker.store import tables

D = tables.deliveries.c


def states(ctx: Context) -> Counter[str]:
    """How many deliveries are in each state."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(D.state, func.count()).group_by(D.state)).all()
    return Counter({state: n for state, n in rows})


def make_due(ctx: Context) -> None:
    """Let every backoff pass."""
    with ctx.engine.begin() as conn:
        conn.execute(update(tables.deliveries).values(not_before=None))
