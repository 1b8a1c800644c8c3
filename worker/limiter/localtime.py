"""An account's local calendar: its local days and the periods outside its quiet hours.

Everything is computed on instants (epoch ms) and judged by the local wall clock, so daylight
saving needs no special case: an instant is quiet when its local time of day is inside the
quiet range. On a spring-forward night a quiet range ending inside the skipped hour ends at
the jump; on a fall-back night a repeated hour that lies in the quiet range is quiet both
times. Between two UTC-offset changes wall time runs linearly, which gives every boundary
directly; the instant of an offset change is found by bisection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from worker.limiter.model import DAY_MS, MINUTE_MS, QuietHours

_EPOCH = date(1970, 1, 1)
_MAX_STEPS = 32  # boundaries met within one local day: midnight, 2 quiet ends, offset changes


@dataclass(frozen=True, slots=True)
class LocalDay:
    """One calendar day in the account's time zone, as epoch-ms bounds."""

    key: str  # ISO date, e.g. "2026-03-08"
    start_ms: int  # the first instant of that local date
    end_ms: int  # the first instant after it on another local date


@dataclass(frozen=True, slots=True)
class OpenPeriod:
    """An uninterrupted stretch in which sending is allowed, inside one local day."""

    start_ms: int
    end_ms: int  # exclusive: quiet hours or the next local day begin here
    day: LocalDay

    def contains(self, at_ms: int) -> bool:
        return self.start_ms <= at_ms < self.end_ms


class LocalCalendar:
    """Local days and open periods of one time zone with optional quiet hours."""

    def __init__(self, tz: ZoneInfo, quiet_hours: QuietHours | None = None) -> None:
        self.tz = tz
        self.quiet_hours = quiet_hours
        bounds = [0]
        if quiet_hours is not None:
            bounds += [quiet_hours.start_min * MINUTE_MS, quiet_hours.end_min * MINUTE_MS]
        self._bounds_ms = tuple(bounds)  # wall-clock times of day where something changes

    def offset_ms(self, at_ms: int) -> int:
        """The UTC offset in force at an instant (offsets change on whole seconds)."""
        offset = datetime.fromtimestamp(at_ms // 1000, UTC).astimezone(self.tz).utcoffset()
        return 0 if offset is None else int(offset.total_seconds() * 1000)

    def _day_index(self, at_ms: int) -> int:
        return (at_ms + self.offset_ms(at_ms)) // DAY_MS

    def is_quiet(self, at_ms: int) -> bool:
        """Whether the local wall-clock time at this instant falls in the quiet hours."""
        if self.quiet_hours is None:
            return False
        return self.quiet_hours.contains((at_ms + self.offset_ms(at_ms)) % DAY_MS)

    def _next_change(self, at_ms: int) -> int:
        """The first instant after `at_ms` at which the quiet state or local date may change."""
        offset = self.offset_ms(at_ms)
        wall_ms = (at_ms + offset) % DAY_MS
        step = min(((b - wall_ms) % DAY_MS) or DAY_MS for b in self._bounds_ms)
        candidate = at_ms + step
        if self.offset_ms(candidate) == offset:
            return candidate
        low, high = at_ms, candidate  # the offset changes in (low, high]: find where
        while high - low > 1:
            middle = (low + high) // 2
            if self.offset_ms(middle) == offset:
                low = middle
            else:
                high = middle
        return high

    def local_day(self, at_ms: int) -> LocalDay:
        """The local day containing an instant."""
        index = self._day_index(at_ms)
        day = _EPOCH + timedelta(days=index)
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        start_ms = min(int(midnight.timestamp() * 1000), at_ms)
        end_ms = at_ms
        for _ in range(_MAX_STEPS):
            end_ms = self._next_change(end_ms)
            if self._day_index(end_ms) != index:
                return LocalDay(day.isoformat(), start_ms, end_ms)
        raise RuntimeError(f"no end found for local day {day} in {self.tz}")

    def open_period(self, at_ms: int) -> OpenPeriod:
        """The open period containing `at_ms`, or else the first one after it."""
        start_ms = at_ms
        for _ in range(_MAX_STEPS):
            if not self.is_quiet(start_ms):
                break
            start_ms = self._next_change(start_ms)
        else:
            raise RuntimeError(f"quiet hours {self.quiet_hours} never end in {self.tz}")
        day = self.local_day(start_ms)
        end_ms = start_ms
        while end_ms < day.end_ms:
            end_ms = self._next_change(end_ms)
            if self.is_quiet(end_ms):
                break
        return OpenPeriod(start_ms, min(end_ms, day.end_ms), day)
