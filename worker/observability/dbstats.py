"""The database reads behind the Prometheus gauges: one snapshot, a few small queries.

The database is the source of truth (DESIGN 1), so every process that reports these reports
the same numbers. Each read stays cheap on a table of millions of deliveries: counts by
(account, state) come from the tallies the triggers keep (`store.tallies`); the oldest
pending delivery of each account is the first row of its lane index (`ix_delivery_lane`:
account, state, run, id), one index probe per account; accounts are a small table; inbound
decisions read the messages, which are far fewer than deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, ScalarSelect, func, select, true

from worker.store import tables, tallies
from worker.store.models import DeliveryState, utcnow

A = tables.accounts.c
D = tables.deliveries.c
M = tables.messages.c


@dataclass(frozen=True)
class AccountRow:
    name: str
    channel: str
    state: str


@dataclass
class Snapshot:
    """What the gauges show, read at one scrape."""

    accounts: dict[int, AccountRow] = field(default_factory=dict)
    # (account id or None, delivery state) -> rows
    deliveries: dict[tuple[int | None, str], int] = field(default_factory=dict)
    oldest_pending_s: dict[int, float] = field(default_factory=dict)  # account id -> age
    decisions: dict[str, int] = field(default_factory=dict)  # inbound action -> messages
    undecided: int = 0


def _oldest_pending(
    account_id: ColumnElement[int], *, campaigns: bool = False
) -> ScalarSelect[Any]:
    """When the account's first pending campaign send (lowest run, then id: the lane index's
    order) or its first pending reply was created."""
    which = D.run_id.is_not(None) if campaigns else D.run_id.is_(None)
    order = (D.run_id, D.id) if campaigns else (D.id,)
    first = (
        select(D.created_at)
        .where(D.account_id == account_id, D.state == DeliveryState.PENDING, which)
        .order_by(*order)
        .limit(1)
    )
    return first.scalar_subquery()


def read_snapshot(engine: Engine, now: datetime | None = None) -> Snapshot:
    """Every figure the gauges need, in one connection."""
    now = now or utcnow()
    snap = Snapshot()
    oldest = select(A.id, _oldest_pending(A.id, campaigns=True), _oldest_pending(A.id))
    decided = (
        select(M.action, func.count())
        .where(M.inbound == true(), M.decided_at.is_not(None))
        .group_by(M.action)
    )
    waiting = select(func.count()).where(M.inbound == true(), M.decided_at.is_(None))
    with engine.connect() as conn:
        for id_, name, channel, state in conn.execute(select(A.id, A.name, A.channel, A.state)):
            snap.accounts[id_] = AccountRow(name, channel, state)
        snap.deliveries = tallies.state_counts(conn)
        for account_id, *created in conn.execute(oldest):
            if times := [t for t in created if t is not None]:
                snap.oldest_pending_s[account_id] = max(0.0, (now - min(times)).total_seconds())
        for action, n in conn.execute(decided):
            snap.decisions[action or "none"] = int(n)
        snap.undecided = int(conn.execute(waiting).scalar_one())
    return snap
