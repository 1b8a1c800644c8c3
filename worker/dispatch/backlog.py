"""Which accounts have work: what the tick wakes, and whether a lane should come back."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, and_, or_, select

from worker.store import tables
from worker.store.models import AccountState, DeliveryState, utcnow

D = tables.deliveries.c
R = tables.campaign_runs.c


def pending_accounts(engine: Engine, run_ids: Sequence[int]) -> list[int]:
    """Accounts that can send now and have due pending rows in the given (running) runs.

    Paused and banned accounts, accounts still cooling down and accounts waiting for quiet
    hours to end or a new day (`next_send_at`) are left asleep. One indexed EXISTS per
    sender account of those runs' campaigns, not a DISTINCT over every pending row: this runs
    on every tick, and audiences reach millions.
    """
    if not run_ids:
        return []
    CA, A = tables.campaign_accounts.c, tables.accounts.c
    now = utcnow()
    awake = and_(
        or_(
            A.state == AccountState.ACTIVE,
            and_(A.state == AccountState.COOLDOWN, A.cooldown_until <= now),
        ),
        or_(A.next_send_at.is_(None), A.next_send_at <= now),
    )
    senders = (
        select(CA.account_id)
        .join(tables.campaign_runs, R.campaign_id == CA.campaign_id)
        .join(tables.accounts, A.id == CA.account_id)
        .where(R.id.in_(run_ids), awake)
        .distinct()
    )
    out = []
    with engine.connect() as conn:
        for account_id in conn.execute(senders).scalars().all():
            due = (
                select(D.id)
                .where(
                    D.account_id == account_id,
                    D.state == DeliveryState.PENDING,
                    D.run_id.in_(run_ids),
                    or_(D.not_before.is_(None), D.not_before <= now),
                )
                .limit(1)
            )
            if conn.execute(due).first() is not None:
                out.append(account_id)
    return out


def has_pending(engine: Engine, account_id: int, run_ids: Sequence[int]) -> bool:
    if not run_ids:
        return False
    stmt = (
        select(D.id)
        .where(and_(D.account_id == account_id, D.state == DeliveryState.PENDING))
        .where(D.run_id.in_(run_ids))
        .limit(1)
    )
    with engine.connect() as conn:
        return conn.execute(stmt).first() is not None
