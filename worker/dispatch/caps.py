"""Per-recipient frequency caps across all marketing campaigns (the policy's `[recipient]`).

Caps are company-wide: they count every `sent` marketing delivery to the contact, whichever
account sent it, over a rolling day and week. A short Redis lock per contact makes the check
exact when two lanes reach the same person at once: the second waits and checks again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import redis
from sqlalchemy import Engine, case, func, select

from worker.dispatch.lease import release_many
from worker.limiter import RecipientLimits
from worker.store import tables
from worker.store.models import DeliveryState, utcnow

D, R, C = tables.deliveries.c, tables.campaign_runs.c, tables.campaigns.c
LOCK_MS = 120_000


def _lock_key(contact_id: int) -> str:
    return f"siyu:recipient:{contact_id}"


def recent_marketing_sends(
    engine: Engine, contact_ids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """contact id -> (sent in the last 24 h, sent in the last 7 days), marketing only."""
    now = utcnow()
    day_ago, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    stmt = (
        select(
            D.contact_id,
            func.sum(case((D.sent_at >= day_ago, 1), else_=0)),
            func.count(),
        )
        .join(tables.campaign_runs, R.id == D.run_id)
        .join(tables.campaigns, C.id == R.campaign_id)
        .where(
            D.contact_id.in_(contact_ids),
            D.state == DeliveryState.SENT,
            C.kind == "marketing",
            D.sent_at >= week_ago,
        )
        .group_by(D.contact_id)
    )
    with engine.connect() as conn:
        return {row[0]: (int(row[1] or 0), int(row[2])) for row in conn.execute(stmt)}


class CapGuard:
    """Locks recipients for the duration of a chunk and says who is over their cap."""

    def __init__(self, engine: Engine, client: redis.Redis, limits: RecipientLimits) -> None:
        self.engine = engine
        self.client = client
        self.limits = limits
        self.token = uuid.uuid4().hex
        self.held: list[int] = []

    @property
    def active(self) -> bool:
        return self.limits.per_day is not None or self.limits.per_week is not None

    def lock(self, contact_ids: Sequence[int]) -> set[int]:
        """Lock what can be locked now; returns the contacts another lane holds."""
        pipe = self.client.pipeline(transaction=False)
        for contact_id in contact_ids:
            pipe.set(_lock_key(contact_id), self.token, nx=True, px=LOCK_MS)
        busy: set[int] = set()
        for contact_id, got in zip(contact_ids, pipe.execute(), strict=True):
            (self.held.append(contact_id) if got else busy.add(contact_id))
        return busy

    def capped(self, contact_ids: Sequence[int]) -> set[int]:
        if not contact_ids:
            return set()
        counts = recent_marketing_sends(self.engine, contact_ids)
        day_cap, week_cap = self.limits.per_day, self.limits.per_week
        out = set()
        for contact_id, (day, week) in counts.items():
            if (day_cap is not None and day >= day_cap) or (
                week_cap is not None and week >= week_cap
            ):
                out.add(contact_id)
        return out

    def unlock(self) -> None:
        release_many(self.client, [_lock_key(c) for c in self.held], self.token)
        self.held.clear()
