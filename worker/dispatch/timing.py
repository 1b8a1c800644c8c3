"""When a lane may send: sleeps that keep its lease, late wakes, and actual send times.

The limiter hands out send times; this is what makes the lane keep them. A lane sleeps until a
reserved time while renewing its Redis lease; a wake later than `LATE_S` takes a fresh slot
(the late one could land too close to the next send); and a log of the times the lane really
sent must still respect every window before a send goes out (DESIGN decision 6).
"""

from __future__ import annotations

from collections.abc import Callable

from worker.dispatch.lease import Lease
from worker.dispatch.pacers import LimiterPacer
from worker.dispatch.pacing import Pacer, Unpaced
from worker.dispatch.sendlog import SendLog
from worker.runtime import SHUTDOWN, Context

LATE_S = 0.05  # waking later than this after a reserved time means taking a fresh slot


class SendTimer:
    """Waits for one lane; `lease_lost` turns true once a renewal fails and stays so."""

    def __init__(
        self,
        ctx: Context,
        account_id: int,
        lease: Lease,
        pacer: Pacer,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.lease = lease
        self.pacer = pacer
        self.clock = clock
        self.sleep = sleep
        self.lease_lost = False
        self.sent_log: SendLog | None = None
        if isinstance(pacer, LimiterPacer):
            limits = pacer.limiter
            self.sent_log = SendLog.load(
                ctx.redis, account_id, limits.windows, limits.limits.min_gap_s
            )

    def save(self, ctx: Context, account_id: int) -> None:
        """Keep the actual send times for the account's next lane."""
        if self.sent_log is not None:
            self.sent_log.save(ctx.redis, account_id)

    def wait_until(self, when: float) -> bool:
        """Sleep until `when`, renewing the lease; False if the lease was lost or on shutdown."""
        while True:
            left = when - self.clock()
            if left <= 0:
                return True
            if SHUTDOWN.is_set():
                return False
            self.sleep(min(left, 1.0))
            if not self.lease.renew():
                self.lease_lost = True
                return False

    def on_time(self, at: float, deadline: float) -> bool:
        """Wait for the reserved time; if we woke too late, send at a fresh slot instead.

        A send that leaves later than reserved could land too close to the next one; a late
        slot is left unused (it still counts, which only errs on the safe side).
        """
        if not self.wait_until(at):
            return False
        if isinstance(self.pacer, Unpaced) or self.clock() <= at + LATE_S:
            return True
        fresh = self.pacer.reserve(1, not_after=deadline)
        return bool(fresh) and self.wait_until(fresh[0])

    def guard_actual_times(self) -> bool:
        """Wait until a send now keeps every window on actual send times; record it."""
        if self.sent_log is None:
            return True
        wait_s = self.sent_log.wait_s(self.clock())
        if wait_s > 0 and not self.wait_until(self.clock() + wait_s):
            return False
        self.sent_log.record(self.clock())
        return True
