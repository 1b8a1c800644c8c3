"""Reading and nudging delivery rows in tests."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select, update

from worker.dispatch.lane import run_lane
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


def drain(ctx: Context, account_ids: list[int], rounds: int = 50) -> None:
    """Run the accounts' lanes in-process, as workers would, until none has more to do."""
    for _ in range(rounds):
        if not any([run_lane(ctx, a, slice_s=5).more for a in account_ids]):
            return
    raise AssertionError("lanes did not drain")
