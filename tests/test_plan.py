"""Capacity planning (`campaigns plan`) and the pacing arithmetic, with explicit clocks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support.world import add_accounts, add_campaign, add_contacts, make_context
from worker.campaigns.capacity import simulate, steady_rate
from worker.campaigns.plan import plan_campaign
from worker.dispatch.pacers import end_margin_s, open_seconds
from worker.limiter import AccountLimiter, AccountLimits, LocalCalendar, Policy, QuietHours
from worker.limiter.memory import MemoryBackend
from worker.runtime import Context
from worker.store.models import utcnow

NIGHT = QuietHours(start_min=22 * 60, end_min=8 * 60)


def ms(tz: str, *fields: int) -> int:
    return int(datetime(*fields, tzinfo=ZoneInfo(tz)).timestamp() * 1000)  # type: ignore[misc]


def test_the_steady_rate_is_the_tightest_of_windows_and_gaps() -> None:
    assert steady_rate(AccountLimits(per_second=2, per_minute=60)) == pytest.approx(1.0)
    assert steady_rate(AccountLimits(per_minute=20, min_gap_s=2, max_gap_s=8)) == pytest.approx(0.2)
    assert steady_rate(AccountLimits()) == float("inf")


def test_quiet_hours_in_shanghai_leave_only_the_open_part_of_the_window() -> None:
    cal = LocalCalendar(ZoneInfo("Asia/Shanghai"), NIGHT)
    start, end = ms("Asia/Shanghai", 2026, 12, 1, 6), ms("Asia/Shanghai", 2026, 12, 1, 12)
    assert open_seconds(cal, start, end) == 4 * 3600
    capacity, eta = simulate(AccountLimits(per_minute=60), cal, start, end, 100)
    assert capacity == 4 * 3600
    assert eta == ms("Asia/Shanghai", 2026, 12, 1, 8) + 100_000


def test_a_daylight_saving_night_does_not_change_the_open_hours() -> None:
    cal = LocalCalendar(ZoneInfo("America/New_York"), NIGHT)
    start = ms("America/New_York", 2026, 3, 8, 0)
    end = ms("America/New_York", 2026, 3, 9, 0)
    assert (end - start) == 23 * 3600 * 1000  # the spring-forward day is 23 hours long
    assert open_seconds(cal, start, end) == 14 * 3600


@pytest.mark.parametrize("local_start", [(12, 0), (23, 52), (23, 59)])
def test_a_window_across_local_midnight_has_the_capacity_of_any_other(
    local_start: tuple[int, int],
) -> None:
    """Sending goes on across midnight: splitting the window at the day must lose nothing
    (the plan once said 9 for ten minutes at one a minute when they straddled midnight)."""
    cal = LocalCalendar(ZoneInfo("Asia/Shanghai"), None)
    start = ms("Asia/Shanghai", 2026, 12, 1, *local_start)
    assert simulate(AccountLimits(per_minute=1), cal, start, start + 600_000, 0)[0] == 10
    assert simulate(AccountLimits(per_second=2), cal, start, start + 600_000, 0, 150)[0] == int(
        600 * 2 / 1.15
    )


def test_per_day_caps_capacity_per_local_day_and_push_the_eta_to_the_next_day() -> None:
    cal = LocalCalendar(ZoneInfo("Asia/Shanghai"), NIGHT)
    start = ms("Asia/Shanghai", 2026, 12, 1, 8)
    end = ms("Asia/Shanghai", 2026, 12, 3, 8)
    limits = AccountLimits(per_minute=60, per_day=800)
    capacity, eta = simulate(limits, cal, start, end, 1000)
    assert capacity == 1600
    assert eta is not None and eta >= ms("Asia/Shanghai", 2026, 12, 2, 8)


@pytest.mark.parametrize("margin_ms", [0, 150])
def test_the_planned_capacity_is_what_the_limiter_grants(margin_ms: int) -> None:
    """The plan must count the limiter's window margin: at 2/s it costs 13% of capacity."""
    limits = AccountLimits(per_second=2)
    start = 1_780_000_000.0
    limiter = AccountLimiter(
        Policy("p", limits),
        "a",
        "UTC",
        MemoryBackend(lambda: start),
        clock=lambda: start,
        window_margin_ms=margin_ms,
    )
    granted = len(limiter.reserve_until(5000, not_after=start + 600).times_s)
    calendar = LocalCalendar(ZoneInfo("UTC"), limits.quiet_hours)
    start_ms = int(start * 1000)
    capacity, _ = simulate(limits, calendar, start_ms, start_ms + 600_000, 0, margin_ms)
    assert capacity is not None and abs(capacity - granted) <= granted // 100
    assert granted < 1100 if margin_ms else granted == 1200


def test_the_pacing_margin_is_five_percent_within_bounds() -> None:
    assert end_margin_s(120) == pytest.approx(6.0)
    assert end_margin_s(10) == 2.0
    assert end_margin_s(86_400) == 300.0


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Context:
    rl = tmp_path / "rl"
    rl.mkdir()
    (rl / "slow.toml").write_text("[account]\nper_minute = 1\n")
    return make_context(db_url, redis_url, tmp_path, rate_limits_dir=rl)


def window(minutes: int, delay_s: float = 60) -> dict[str, str]:
    begin = utcnow().replace(tzinfo=UTC) + timedelta(seconds=delay_s)
    return {"start": begin.isoformat(), "end": (begin + timedelta(minutes=minutes)).isoformat()}


def test_plan_says_how_many_would_not_fit(ctx: Context) -> None:
    from sqlalchemy import update

    from worker.store import tables

    add_accounts(ctx.engine, ["a1", "a2"])
    with ctx.engine.begin() as conn:
        conn.execute(update(tables.accounts).values(policy="slow"))
    add_contacts(ctx.engine, 50)
    add_campaign(ctx, "c1", ["a1", "a2"], **window(10))
    doc = plan_campaign(ctx.engine, ctx.settings.rate_limits_dir, "c1")
    assert doc["members"] == 50
    assert [a["capacity"] for a in doc["accounts"]] == [10, 10]
    assert sum(a["assigned"] for a in doc["accounts"]) == 50
    assert doc["fits"] is False and doc["would_not_fit"] == 30
    assert doc["will_send"] == 20 and doc["not_sent"] == {"no_capacity": 30}
    assert doc["eta"] is None


def test_plan_fits_with_an_eta_inside_the_window(ctx: Context) -> None:
    add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 10)
    add_campaign(ctx, "c1", ["a1"], **window(10))
    doc = plan_campaign(ctx.engine, ctx.settings.rate_limits_dir, "c1")
    assert doc["fits"] is True and doc["would_not_fit"] == 0
    assert doc["accounts"][0]["capacity"] is None  # the memory policy limits nothing
    assert doc["eta"] is not None and doc["eta"] <= doc["window"]["end"]


def test_free_contacts_are_spread_by_capacity_so_a_slow_account_gets_less(ctx: Context) -> None:
    from sqlalchemy import func, select, update

    from tests.support.world import start
    from worker.campaigns.materialise import materialise
    from worker.store import tables

    ids = add_accounts(ctx.engine, ["slow", "fast"])
    with ctx.engine.begin() as conn:
        conn.execute(
            update(tables.accounts).where(tables.accounts.c.name == "slow").values(policy="slow")
        )
    add_contacts(ctx.engine, 110)
    add_campaign(ctx, "c1", ["slow", "fast"], **window(10, delay_s=2))
    doc = plan_campaign(ctx.engine, ctx.settings.rate_limits_dir, "c1")
    slow, fast = doc["accounts"]
    assert slow["capacity"] in (9, 10) and slow["assigned"] <= 15
    assert fast["assigned"] == 110 - slow["assigned"]
    time.sleep(2)
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
    d = tables.deliveries.c
    with ctx.engine.connect() as conn:
        counts = dict(conn.execute(select(d.account_id, func.count()).group_by(d.account_id)).all())
    assert counts[ids["slow"]] <= 15 and counts[ids["fast"]] >= 95
