"""Which accounts have work: what the tick wakes, and whether a lane should come back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, or_, select

from worker.store import tables
from worker.store.models import AccountState, DeliveryState, utcnow

D = tables.deliveries.c
R = tables.campaign_runs.c


def pending_accounts(engine: Engine, run_ids: Sequence[int]) -> list[int]:
    """Accounts that can send now and have due pending rows: replies, or the given (running)
    runs' sends.

    Paused and banned accounts, accounts still cooling down and accounts waiting for quiet
    hours to end or a new day (`next_send_at`) are left asleep. One indexed EXISTS per awake
    account (`ix_delivery_lane`), not a DISTINCT over every pending row: this runs on every
    tick, and audiences reach millions.
    """
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
        .where(R.id.in_(run_ids))
    )
    out = []
    with engine.connect() as conn:
        accounts = conn.execute(select(A.id, A.id.in_(senders)).where(awake).order_by(A.id))
        for account_id, sends in accounts.all():
            if _has_due(conn, account_id, None, now) or (
                sends and _has_due(conn, account_id, run_ids, now)
            ):
                out.append(account_id)
    return out


def has_pending(engine: Engine, account_id: int, run_ids: Sequence[int]) -> bool:
    """Pending rows of the account, due or not: replies, or the given runs' sends."""
    with engine.connect() as conn:
        return _has_due(conn, account_id, None, None) or (
            bool(run_ids) and _has_due(conn, account_id, run_ids, None)
        )


def _has_due(
    conn: Connection, account_id: int, run_ids: Sequence[int] | None, now: datetime | None
) -> bool:
    """Whether the account has pending rows of these runs (None: replies), due by `now`."""
    which = D.run_id.is_(None) if run_ids is None else D.run_id.in_(run_ids)
    stmt = select(D.id).where(D.account_id == account_id, D.state == DeliveryState.PENDING, which)
    if now is not None:
        stmt = stmt.where(or_(D.not_before.is_(None), D.not_before <= now))
    return conn.execute(stmt.limit(1)).first() is not None
