"""The fence before every send: a lane sends only while it provably holds its account (DESIGN 13).

A send may start only while the lane's Redis lease has more time left than one send can take
(`need_s`: the channel's send timeout plus a margin), renewing it when less is left; a lane
that cannot renew stops for good. The rows the lane holds in the database carry its token and
a lease (`db_lease_s`) that is extended with the renewals, long enough to outlast the Redis
lease: the reconciler takes a row over only once its owner has lost the Redis lease *and* the
row's lease has passed, by which time the lane has stopped sending. Host clocks are assumed
within a few seconds of each other (NTP); `DB_LEASE_SLACK_S` covers that.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from worker.config import Settings
from worker.dispatch import outbox
from worker.dispatch.lease import Lease

SEND_MARGIN_S = 1.0  # the lease must outlast a send by this much
DB_LEASE_SLACK_S = 10.0  # clock skew between hosts, and the time a renewal takes


def lane_lease_ms(settings: Settings, send_timeout_s: float) -> int:
    """The Redis lease of a lane: the configured one, but always room for two sends."""
    need_ms = math.ceil((send_timeout_s + SEND_MARGIN_S) * 1000)
    return max(settings.lane_lease_ms, 2 * need_ms)


def rows_lease_s(lease_ms: int) -> float:
    """The database lease of a lane's rows: two Redis leases and the slack."""
    return 2 * lease_ms / 1000 + DB_LEASE_SLACK_S


class Fence:
    """Keeps one lane's Redis lease and its rows' database lease; `lost` is for good."""

    def __init__(
        self,
        engine: Engine,
        lease: Lease,
        send_timeout_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.lease = lease
        self.need_s = send_timeout_s + SEND_MARGIN_S
        self.db_lease_s = rows_lease_s(lease.ttl_ms)
        self.clock = clock
        self.lost = False
        self._held: list[int] = []
        self._rows_until = 0.0

    @property
    def token(self) -> str:
        return self.lease.token

    def hold(self, ids: Sequence[int], claimed_at: float) -> None:
        """The rows just claimed (with `db_lease_s`, asked at `claimed_at` by `clock`)."""
        self._held = list(ids)
        self._rows_until = claimed_at + self.db_lease_s

    def keep(self) -> bool:
        """Renew the Redis lease, and the rows' lease when half of it is gone; False if lost."""
        if self.lost:
            return False
        if not self.lease.renew():
            self.lost = True
            return False
        if self._held and self._rows_until - self.clock() < self.db_lease_s / 2:
            asked = self.clock()
            outbox.extend(self.engine, self._held, self.token, self.db_lease_s)
            self._rows_until = asked + self.db_lease_s
        return True

    def ready(self) -> bool:
        """Whether a send may start now; renews first when less than a send's time is left."""
        if self.lost:
            return False
        rows_left_s = self._rows_until - self.clock() if self._held else math.inf
        if self.lease.remaining_s() > self.need_s and rows_left_s > self.need_s:
            return True
        return self.keep()
