"""When may the next sends happen? The lane asks a pacer; limits live behind it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol


class Pacer(Protocol):
    """Reserves send times for one account lane."""

    next_open_s: float | None

    def batch_size(self, default: int) -> int:
        """How many rows to claim now (small for slow accounts, so leases stay short)."""
        ...

    def reserve(
        self, count: int, *, not_after: float | None = None, paced: bool = True
    ) -> list[float]:
        """Up to `count` ascending epoch-second send times before `not_after`.

        Fewer than `count` means no more fit now; `next_open_s` then says when to ask again.
        Every returned time is already counted against the account's limits. `paced=False`
        asks for the limits alone, without pacing toward the runs' end times (replies).
        """
        ...

    def release(self, times: Sequence[float]) -> None:
        """Give back reserved times that will not be used, so they count for nothing."""
        ...


class Unpaced:
    """No limits: everything may go now (the memory channel, benchmarks)."""

    next_open_s: float | None = None

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def batch_size(self, default: int) -> int:
        return default

    def reserve(
        self, count: int, *, not_after: float | None = None, paced: bool = True
    ) -> list[float]:
        return [float(self._clock())] * count

    def release(self, times: Sequence[float]) -> None:
        """Nothing was counted."""
