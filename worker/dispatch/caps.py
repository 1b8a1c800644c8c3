"""Per-recipient limits (the policy's `[recipient]`): frequency caps across all marketing
campaigns, and the least gap between one account's messages to one contact.

Caps are company-wide: they count every marketing delivery to the contact that was sent or
may have been (`sent`, `sending`, `unknown`), whichever account sent it, over a rolling day
and week. A lane checks them before it reserves send slots (a capped contact costs no slot)
and again right before the send under a short Redis lock per contact, so two lanes reaching
the same person at once cannot both pass: the second waits and checks again. A contact that
appears several times in one batch (two runs of one account) is locked once and counted as
often as it appears.

`min_gap_s` (Telegram: about one message a second per chat) applies to every message,
replies too: a Redis key per account and contact lives that long after each send. A message
whose key is alive (or whose contact comes twice in one group) waits until it expires.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import Engine, Select, case, func, select

from worker.dispatch.keys import Keys
from worker.dispatch.lease import release_many
from worker.limiter import RecipientLimits
from worker.store import tables
from worker.store.models import DeliveryState, utcnow

D, R, C = tables.deliveries.c, tables.campaign_runs.c, tables.campaigns.c
LOCK_MS = 120_000
COUNTED = (DeliveryState.SENT, DeliveryState.SENDING, DeliveryState.UNKNOWN)


def recent_marketing_counts() -> Select[Any]:
    """Per contact: `day` (messages in the last 24 h) and `week` (in the last 7 days),
    marketing only; add a WHERE on `D.contact_id` to narrow it.

    A row in flight or ambiguous counts at its last update: it may have reached the person.
    The lanes' cap check and `campaigns plan` both count with it.
    """
    now = utcnow()
    at = func.coalesce(D.sent_at, D.updated_at)
    return (
        select(
            D.contact_id.label("contact_id"),
            func.sum(case((at >= now - timedelta(days=1), 1), else_=0)).label("day"),
            func.count().label("week"),
        )
        .join(tables.campaign_runs, R.id == D.run_id)
        .join(tables.campaigns, C.id == R.campaign_id)
        .where(D.state.in_(COUNTED), C.kind == "marketing", at >= now - timedelta(days=7))
        .group_by(D.contact_id)
    )


def recent_marketing_sends(
    engine: Engine, contact_ids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """contact id -> (messages in the last 24 h, in the last 7 days), marketing only."""
    stmt = recent_marketing_counts().where(D.contact_id.in_(sorted(set(contact_ids))))
    with engine.connect() as conn:
        return {row[0]: (int(row[1] or 0), int(row[2])) for row in conn.execute(stmt)}


class CapGuard:
    """Locks recipients for the duration of a send group and says who is over their cap."""

    def __init__(
        self,
        engine: Engine,
        client: redis.Redis,
        limits: RecipientLimits,
        names: Keys,
        account_id: int = 0,
    ) -> None:
        self.engine = engine
        self.client = client
        self.limits = limits
        self.names = names
        self.account_id = account_id
        self.token = uuid.uuid4().hex
        self.held: set[int] = set()

    @property
    def active(self) -> bool:
        return self.limits.per_day is not None or self.limits.per_week is not None

    def lock(self, contact_ids: Sequence[int]) -> set[int]:
        """Lock what can be locked now; returns the contacts another lane holds.

        Each contact is locked once, however often it is listed, and a contact this guard
        already holds is never busy: a lane cannot collide with itself.
        """
        wanted = [c for c in dict.fromkeys(contact_ids) if c not in self.held]
        pipe = self.client.pipeline(transaction=False)
        for contact_id in wanted:
            pipe.set(self.names.recipient(contact_id), self.token, nx=True, px=LOCK_MS)
        busy: set[int] = set()
        for contact_id, got in zip(wanted, pipe.execute(), strict=True):
            (self.held.add(contact_id) if got else busy.add(contact_id))
        return busy

    def over_cap(self, contact_ids: Sequence[int]) -> list[bool]:
        """For each entry of `contact_ids` in order: would this message exceed a cap?

        A contact listed k times may receive as many of them as its caps still allow; the
        entries after that are over.
        """
        if not contact_ids:
            return []
        counts = recent_marketing_sends(self.engine, contact_ids)
        seen: Counter[int] = Counter()
        out = []
        for contact_id in contact_ids:
            day, week = counts.get(contact_id, (0, 0))
            extra = seen[contact_id]
            seen[contact_id] += 1
            out.append(self._over(day + extra, week + extra))
        return out

    def _over(self, day: int, week: int) -> bool:
        day_cap, week_cap = self.limits.per_day, self.limits.per_week
        return (day_cap is not None and day >= day_cap) or (
            week_cap is not None and week >= week_cap
        )

    @property
    def gap_ms(self) -> int:
        """The policy's `min_gap_s` in milliseconds (0: none)."""
        return int((self.limits.min_gap_s or 0) * 1000)

    def space(self, contact_ids: Sequence[int]) -> list[bool]:
        """For each entry in order: may the account message this contact now, at least
        `min_gap_s` after its last message to them? Each one allowed is taken: a later entry
        for the same contact, here or in another group, waits."""
        pipe = self.client.pipeline(transaction=False)
        for contact_id in contact_ids:
            key = self.names.recipient_gap(self.account_id, contact_id)
            pipe.set(key, "1", nx=True, px=self.gap_ms)
        return [bool(got) for got in pipe.execute()]

    def sent(self, contact_id: int) -> None:
        """The gap runs from the end of a send (a Telegram text in parts takes seconds)."""
        self.client.set(self.names.recipient_gap(self.account_id, contact_id), "1", px=self.gap_ms)

    def unlock(self) -> None:
        release_many(self.client, [self.names.recipient(c) for c in self.held], self.token)
        self.held.clear()
