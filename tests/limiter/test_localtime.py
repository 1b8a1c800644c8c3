"""Local days and quiet hours in the account's time zone, across DST transitions."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from worker.limiter.localtime import LocalCalendar
from worker.limiter.model import HOUR_MS, QuietHours

from .timeutil import epoch_ms

NEW_YORK = ZoneInfo("America/New_York")


def quiet(text: str) -> QuietHours:
    start, end = text.split("-")
    h1, m1 = start.split(":")
    h2, m2 = end.split(":")
    return QuietHours(int(h1) * 60 + int(m1), int(h2) * 60 + int(m2))


def test_shanghai_quiet_hours_wrap_midnight_and_reopen_at_eight() -> None:
    calendar = LocalCalendar(ZoneInfo("Asia/Shanghai"), quiet("22:00-08:00"))
    period = calendar.open_period(epoch_ms("2026-05-01T23:00:00+08:00"))
    assert period.start_ms == epoch_ms("2026-05-02T08:00:00+08:00")
    assert period.end_ms == epoch_ms("2026-05-02T22:00:00+08:00")
    assert period.day.key == "2026-05-02"
    assert period.day.start_ms == epoch_ms("2026-05-02T00:00:00+08:00")
    assert period.day.end_ms == epoch_ms("2026-05-03T00:00:00+08:00")


def test_an_instant_outside_quiet_hours_opens_at_once() -> None:
    calendar = LocalCalendar(ZoneInfo("Asia/Shanghai"), quiet("22:00-08:00"))
    noon = epoch_ms("2026-05-01T12:34:56+08:00")
    assert calendar.open_period(noon).start_ms == noon
    assert not calendar.is_quiet(noon)
    assert calendar.is_quiet(epoch_ms("2026-05-01T22:00:00+08:00"))
    assert not calendar.is_quiet(epoch_ms("2026-05-01T08:00:00+08:00"))


def test_quiet_hours_ending_in_the_skipped_spring_hour_end_at_the_jump() -> None:
    # 2026-03-08 02:00 EST becomes 03:00 EDT (07:00 UTC); 02:30 never happens that night.
    calendar = LocalCalendar(NEW_YORK, quiet("22:00-02:30"))
    period = calendar.open_period(epoch_ms("2026-03-07T23:00:00-05:00"))
    assert period.start_ms == epoch_ms("2026-03-08T03:00:00-04:00")
    assert period.end_ms == epoch_ms("2026-03-08T22:00:00-04:00")


def test_a_repeated_autumn_hour_inside_quiet_hours_is_quiet_both_times() -> None:
    # 2026-11-01 02:00 EDT becomes 01:00 EST: 01:00-02:00 happens twice.
    calendar = LocalCalendar(NEW_YORK, quiet("22:00-01:30"))
    first = calendar.open_period(epoch_ms("2026-10-31T23:00:00-04:00"))
    assert (first.start_ms, first.end_ms) == (
        epoch_ms("2026-11-01T01:30:00-04:00"),
        epoch_ms("2026-11-01T01:00:00-05:00"),
    )
    second = calendar.open_period(first.end_ms)
    assert second.start_ms == epoch_ms("2026-11-01T01:30:00-05:00")
    assert second.day.key == first.day.key == "2026-11-01"


def test_local_days_are_23_and_25_hours_long_on_transition_days() -> None:
    calendar = LocalCalendar(NEW_YORK)
    spring = calendar.local_day(epoch_ms("2026-03-08T12:00:00-04:00"))
    autumn = calendar.local_day(epoch_ms("2026-11-01T12:00:00-05:00"))
    assert spring.end_ms - spring.start_ms == 23 * HOUR_MS
    assert autumn.end_ms - autumn.start_ms == 25 * HOUR_MS


def test_a_day_whose_clock_falls_back_at_midnight_ends_once_at_real_midnight() -> None:
    # Santiago ends DST at 24:00 on 2026-04-04: 23:00-24:00 happens twice on that date.
    calendar = LocalCalendar(ZoneInfo("America/Santiago"))
    day = calendar.local_day(epoch_ms("2026-04-04T12:00:00-03:00"))
    assert day.key == "2026-04-04"
    assert day.end_ms == epoch_ms("2026-04-05T00:00:00-04:00")
    assert day.end_ms - day.start_ms == 25 * HOUR_MS
