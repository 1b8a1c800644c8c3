"""A last line of defence on actual send times, under the reservations.

Reservations keep the *reserved* times inside every window, but a send can leave later than
its slot (a busy host, a slow database write) and so land close to the next one. The lane
keeps the actual start times of its recent sends and, before each send, waits until sending
now keeps every window (and the minimum gap) on those actual times too. The log is kept in
Redis between lane slices, so a new slice continues where the last one stopped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import redis

from worker.limiter import Window

KEEP = 512


class SendLog:
    """Recent actual send times of one account, with the windows they must respect."""

    def __init__(
        self, windows: Sequence[Window], min_gap_s: float, initial: Sequence[float] = ()
    ) -> None:
        self.windows = [w for w in windows if w.limit <= KEEP]
        self.min_gap_s = min_gap_s
        self.times: deque[float] = deque(sorted(initial)[-KEEP:], maxlen=KEEP)

    def wait_s(self, now: float) -> float:
        """Seconds to wait before a send at `now` keeps every window and the minimum gap."""
        wait = 0.0
        if self.times and self.min_gap_s > 0:
            wait = max(wait, self.times[-1] + self.min_gap_s - now)
        for window in self.windows:
            span_s = window.span_ms / 1000
            if len(self.times) >= window.limit:
                oldest_that_counts = self.times[-window.limit]
                wait = max(wait, oldest_that_counts + span_s - now)
        return max(0.0, wait)

    def record(self, at: float) -> None:
        self.times.append(at)

    @classmethod
    def load(
        cls, client: redis.Redis, key: str, windows: Sequence[Window], min_gap_s: float
    ) -> SendLog:
        raw = client.lrange(key, 0, -1)
        return cls(windows, min_gap_s, [float(x) for x in raw])

    def save(self, client: redis.Redis, key: str) -> None:
        if not self.times:
            return
        pipe = client.pipeline()
        pipe.delete(key)
        pipe.rpush(key, *[repr(t) for t in self.times])
        pipe.expire(key, 2 * 3600)
        pipe.execute()
