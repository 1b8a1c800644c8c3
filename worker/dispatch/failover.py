"""Move a stopped account's movable deliveries to the healthy accounts of the same campaign.

Owner-bound contacts can only be reached by their owner (DESIGN decision 9), so their rows
stay and wait; every other pending row is spread round-robin over the campaign's other
accounts on the same channel that are active or only cooling down.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, case, exists, select, update

from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import AccountState, CampaignStatus, DeliveryState, utcnow

log = logging.getLogger(__name__)
D, R, A = tables.deliveries.c, tables.campaign_runs.c, tables.accounts.c
CA, CT = tables.campaign_accounts.c, tables.contacts.c
HEALTHY = (AccountState.ACTIVE, AccountState.COOLDOWN)


def _healthy_peers(engine: Engine, run_id: int, account_id: int) -> list[int]:
    me = select(A.channel).where(A.id == account_id).scalar_subquery()
    stmt = (
        select(A.id)
        .join(tables.campaign_accounts, CA.account_id == A.id)
        .join(tables.campaign_runs, R.campaign_id == CA.campaign_id)
        .where(R.id == run_id, A.id != account_id, A.state.in_(HEALTHY), A.channel == me)
        .order_by(CA.position)
    )
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(stmt)]


def move_movable(engine: Engine, account_id: int) -> set[int]:
    """Reassign the account's movable pending rows; returns the accounts that received rows."""
    live = (CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED)
    stmt = (
        select(D.run_id)
        .join(tables.campaign_runs, R.id == D.run_id)
        .where(D.account_id == account_id, D.state == DeliveryState.PENDING, R.status.in_(live))
        .distinct()
    )
    with engine.connect() as conn:
        run_ids = [row[0] for row in conn.execute(stmt)]
    receivers: set[int] = set()
    for run_id in run_ids:
        peers = _healthy_peers(engine, run_id, account_id)
        if not peers:
            log.warning("account %s: no healthy account to take over run %s", account_id, run_id)
            continue
        free = ~exists().where(CT.id == D.contact_id, CT.owner_id.is_not(None))
        target = case({i: peer for i, peer in enumerate(peers)}, value=D.id % len(peers))
        with for_writing(engine).begin() as conn:
            moved = conn.execute(
                update(tables.deliveries)
                .where(
                    D.run_id == run_id,
                    D.account_id == account_id,
                    D.state == DeliveryState.PENDING,
                    free,
                )
                .values(account_id=target, updated_at=utcnow())
            ).rowcount
        if moved:
            log.warning(
                "account %s: moved %s deliveries of run %s to %s", account_id, moved, run_id, peers
            )
            receivers.update(peers)
    return receivers
