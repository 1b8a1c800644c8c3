"""The database reads behind the Prometheus gauges: one snapshot, a few GROUP BYs.

The database is the source of truth (DESIGN 1), so every process that reports these reports
the same numbers. Each read is meant to stay cheap on a table of millions of deliveries:
counts by (state, account) are read from the `ix_delivery_state_account` index alone (an
index-only scan on PostgreSQL, a covering index on SQLite); the oldest pending delivery per
account reads only the pending rows (through the same index); accounts are a small table;
inbound decisions read the messages, which are far fewer than deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, func, select, true

from worker.store import tables
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


def read_snapshot(engine: Engine, now: datetime | None = None) -> Snapshot:
    """Every figure the gauges need, in one connection."""
    now = now or utcnow()
    snap = Snapshot()
    counts = select(D.account_id, D.state, func.count()).group_by(D.state, D.account_id)
    oldest = (
        select(D.account_id, func.min(D.created_at))
        .where(D.state == DeliveryState.PENDING, D.account_id.is_not(None))
        .group_by(D.account_id)
    )
    decided = (
        select(M.action, func.count())
        .where(M.inbound == true(), M.decided_at.is_not(None))
        .group_by(M.action)
    )
    waiting = select(func.count()).where(M.inbound == true(), M.decided_at.is_(None))
    with engine.connect() as conn:
        for id_, name, channel, state in conn.execute(select(A.id, A.name, A.channel, A.state)):
            snap.accounts[id_] = AccountRow(name, channel, state)
        for account_id, state, n in conn.execute(counts):
            snap.deliveries[(account_id, state)] = int(n)
        for account_id, created_at in conn.execute(oldest):
            snap.oldest_pending_s[account_id] = max(0.0, (now - created_at).total_seconds())
        for action, n in conn.execute(decided):
            snap.decisions[action or "none"] = int(n)
        snap.undecided = int(conn.execute(waiting).scalar_one())
    return snap
