"""When a lane may send: sleeps that keep its lease, late wakes, and actual send times.

The limiter hands out send times; this is what makes the lane keep them. A lane sleeps until a
reserved time while keeping its fence (lease renewals); a wake later than `LATE_S` gives the
late slot back and takes a fresh one (the late one could land too close to the next send);
and a log of the times the lane really sent must still respect every window before a send
goes out (DESIGN decision 6). A slot that will not be used is always given back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from worker.dispatch.keys import keys
from worker.dispatch.pacers import LimiterPacer
from worker.dispatch.pacing import Pacer, Unpaced
from worker.dispatch.sendlog import SendLog
from worker.observability.metrics import LIMITER_WAIT
from worker.runtime import SHUTDOWN, Context

LATE_S = 0.05  # waking later than this after a reserved time means taking a fresh slot


class Keeper(Protocol):
    def keep(self) -> bool:
        """Renew the lane's hold on its account; False once it is lost."""
        ...


class SendTimer:
    """Waits for one lane; `lease_lost` turns true once keeping the fence fails, for good."""

    def __init__(
        self,
        ctx: Context,
        account_id: int,
        fence: Keeper,
        pacer: Pacer,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        account: str = "",
    ) -> None:
        self.fence = fence
        self.waits = LIMITER_WAIT.labels(account=account)  # siyu_limiter_wait_seconds
        self.pacer = pacer
        self.clock = clock
        self.sleep = sleep
        self.lease_lost = False
        self.sent_log: SendLog | None = None
        if isinstance(pacer, LimiterPacer):
            limits = pacer.limiter
            self.sent_log = SendLog.load(
                ctx.redis, keys(ctx).sent_times(account_id), limits.windows, limits.limits.min_gap_s
            )

    def save(self, ctx: Context, account_id: int) -> None:
        """Keep the actual send times for the account's next lane."""
        if self.sent_log is not None:
            self.sent_log.save(ctx.redis, keys(ctx).sent_times(account_id))

    def wait_until(self, when: float) -> bool:
        """Sleep until `when`, keeping the fence; False if it was lost or on shutdown.

        Each wait that sleeps is observed in `siyu_limiter_wait_seconds`."""
        started = self.clock()
        if when <= started:
            return True
        try:
            return self._sleep_until(when)
        finally:
            self.waits.observe(self.clock() - started)

    def _sleep_until(self, when: float) -> bool:
        while True:
            left = when - self.clock()
            if left <= 0:
                return True
            if SHUTDOWN.is_set():
                return False
            self.sleep(min(left, 1.0))
            if not self.fence.keep():
                self.lease_lost = True
                return False

    def on_time(self, at: float, not_after: float) -> float | None:
        """Wait for the reserved time; if we woke too late, send at a fresh slot instead.

        A send that leaves later than reserved could land too close to the next one, so the
        late slot is given back and a fresh one taken, before `not_after` (the slice's or the
        run's end). Returns the slot now in use; None: no send now, and the slot was given back.
        """
        if not self.wait_until(at):
            self.pacer.release([at])
            return None
        if isinstance(self.pacer, Unpaced) or self.clock() <= at + LATE_S:
            return at
        self.pacer.release([at])
        # Unpaced: the message was already due, so it takes the limits' next slot. A paced
        # one would go after every slot the batch holds, and each late wake would push the
        # whole plan one gap later, past the run's end when the machine is busy.
        fresh = self.pacer.reserve(1, not_after=not_after, paced=False)
        if fresh and self.wait_until(fresh[0]):
            return fresh[0]
        self.pacer.release(fresh)
        return None

    def guard_actual_times(self) -> bool:
        """Wait until a send now keeps every window on actual send times; record it."""
        if self.sent_log is None:
            return True
        wait_s = self.sent_log.wait_s(self.clock())
        if wait_s > 0 and not self.wait_until(self.clock() + wait_s):
            return False
        self.sent_log.record(self.clock())
        return True
