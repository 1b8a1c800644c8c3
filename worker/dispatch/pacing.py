"""When may the next sends happen? The lane asks a pacer; limits live behind it."""

from __future__ import annotations

import time
from typing import Protocol


class Pacer(Protocol):
    """Reserves send times for one account."""

    def batch_size(self, default: int) -> int:
        """How many rows to claim now (small for slow accounts, so leases stay short)."""
        ...

    def reserve(self, count: int) -> list[float]:
        """Epoch-second times at which `count` sends may happen, in order."""
        ...


class Unpaced:
    """No limits: everything may go now (the memory channel, benchmarks)."""

    def __init__(self, clock: object = time.time) -> None:
        self._clock = clock

    def batch_size(self, default: int) -> int:
        return default

    def reserve(self, count: int) -> list[float]:
        now = self._clock()  # type: ignore[operator]
        return [float(now)] * count
