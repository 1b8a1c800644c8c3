"""The values a rate-limit policy holds, frozen and free of any storage detail.

A policy says how fast one sender account may send (`[account]`) and how often one contact may
be messaged (`[recipient]`). The limiter turns it into windows and gaps for a backend;
`worker.limiter.policy` reads it from `rate_limits/<name>.toml`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily local-time range in which nothing is sent; `start_min > end_min` wraps midnight.

    Minutes after local midnight, start inclusive, end exclusive: "22:00-08:00" is quiet from
    22:00:00 up to 07:59:59.999.
    """

    start_min: int
    end_min: int

    def __post_init__(self) -> None:
        for value in (self.start_min, self.end_min):
            if not 0 <= value < 24 * 60:
                raise ValueError(f"quiet-hours minute {value} is outside 0..1439")
        if self.start_min == self.end_min:
            raise ValueError("quiet hours must not start and end at the same minute")

    def contains(self, ms_of_day: int) -> bool:
        """Whether a local wall-clock time (ms after local midnight) is quiet."""
        start, end = self.start_min * MINUTE_MS, self.end_min * MINUTE_MS
        if start < end:
            return start <= ms_of_day < end
        return ms_of_day >= start or ms_of_day < end

    def __str__(self) -> str:
        return f"{self.start_min // 60:02d}:{self.start_min % 60:02d}-" + (
            f"{self.end_min // 60:02d}:{self.end_min % 60:02d}"
        )


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` sends in any sliding span of `span_ms` milliseconds."""

    span_ms: int
    limit: int

    def __post_init__(self) -> None:
        if self.span_ms <= 0 or self.limit <= 0:
            raise ValueError(f"a window needs a positive span and limit, got {self}")


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """The `[account]` table: limits on one sender account. `None` means "no limit"."""

    per_second: int | None = None
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    min_gap_s: float = 0.0
    max_gap_s: float = 0.0
    quiet_hours: QuietHours | None = None

    def windows(self) -> tuple[Window, ...]:
        """The sliding windows (per second, minute, hour); the local day is counted apart."""
        spans = (
            (self.per_second, SECOND_MS),
            (self.per_minute, MINUTE_MS),
            (self.per_hour, HOUR_MS),
        )
        return tuple(Window(span, limit) for limit, span in spans if limit is not None)

    @property
    def has_gap(self) -> bool:
        return self.max_gap_s > 0

    @property
    def is_unlimited(self) -> bool:
        """No window, no gap and no daily cap: the backend has nothing to enforce."""
        return not self.windows() and not self.has_gap and self.per_day is None

    def scaled(self, rate_multiplier: float) -> AccountLimits:
        """These limits slowed down by `rate_multiplier` (0 < m <= 1).

        Window limits shrink to `floor(limit * m)` (at least 1) and gaps grow to `gap / m`,
        so every way of pacing slows down by the same factor. `per_day` is a volume cap, not
        a rate, and quiet hours are a schedule: both stay as they are.
        """
        check_multiplier(rate_multiplier)
        if rate_multiplier == 1.0:
            return self

        def scale(limit: int | None) -> int | None:
            return None if limit is None else max(1, math.floor(limit * rate_multiplier + 1e-9))

        return AccountLimits(
            per_second=scale(self.per_second),
            per_minute=scale(self.per_minute),
            per_hour=scale(self.per_hour),
            per_day=self.per_day,
            min_gap_s=self.min_gap_s / rate_multiplier,
            max_gap_s=self.max_gap_s / rate_multiplier,
            quiet_hours=self.quiet_hours,
        )


@dataclass(frozen=True, slots=True)
class RecipientLimits:
    """The `[recipient]` table: how often one contact may receive marketing messages
    (`per_day`, `per_week`, from every account), and `min_gap_s`: at least this long between
    two messages of any kind from one account to one contact (Telegram: about one a second
    per chat)."""

    per_day: int | None = None
    per_week: int | None = None
    min_gap_s: float | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """One named policy; `source` is the file it came from (or `<built-in>`)."""

    name: str
    account: AccountLimits = field(default_factory=AccountLimits)
    recipient: RecipientLimits = field(default_factory=RecipientLimits)
    source: str = "<built-in>"


UNLIMITED_DEFAULT = Policy("default")


def check_multiplier(rate_multiplier: float) -> None:
    """Raise `ValueError` unless 0 < rate_multiplier <= 1."""
    if not (isinstance(rate_multiplier, int | float) and 0 < rate_multiplier <= 1):
        raise ValueError(f"rate_multiplier must be in (0, 1], got {rate_multiplier!r}")
