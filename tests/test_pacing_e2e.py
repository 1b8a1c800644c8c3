"""Issue-3 acceptance with real worker processes, real Redis and the mock platform over HTTP."""

from __future__ import annotations

import bisect
import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support.cluster import Workers, wait_for, worker_env
from tests.support.mockplatform import duplicate_attempts, running_mock_platform
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_context,
    start,
)
from worker.campaigns.lifecycle import cancel_campaign
from worker.campaigns.status import campaign_status, iter_deliveries
from worker.runtime import Context
from worker.store.models import Account, utcnow

pytestmark = pytest.mark.slow


def cluster_env(
    ctx: Context, db_url: str, redis_url: str, policies: dict[str, str]
) -> dict[str, str]:
    return worker_env(
        ctx, db_url, redis_url, policies, SIYU_LANE_LEASE_MS="4000", SIYU_TICK_INTERVAL_S="1"
    )


def received(url: str) -> dict[str, list[float]]:
    """Per account, the platform's receive times in epoch seconds, sorted."""
    out: dict[str, list[float]] = defaultdict(list)
    for m in httpx.get(f"{url}/v1/messages", timeout=60).json():
        out[m["account"]].append(datetime.fromisoformat(m["received_at"]).timestamp())
    return {k: sorted(v) for k, v in out.items()}


def max_in_window(times: list[float], span_s: float) -> int:
    """The most events inside any half-open window [t, t + span) over the timeline."""
    return max((bisect.bisect_left(times, t + span_s) - i for i, t in enumerate(times)), default=0)


def greedy_capacity(duration_s: float, per_second: int, per_minute: int) -> int:
    """How many sends a perfect sender fits in `duration_s` under the two windows."""
    times: list[float] = []
    t = 0.0
    while t <= duration_s:
        if (
            max_in_window([*times, t], 1.0) <= per_second
            and sum(1 for x in times if x > t - 60.0) < per_minute
        ):
            times.append(t)
        t = round(t + 0.01, 2)
    return len(times)


@pytest.fixture
def sqlite_ctx(sqlite_url: str, redis_url: str, tmp_path: Path) -> Context:
    return make_context(sqlite_url, redis_url, tmp_path)


def test_four_workers_never_break_any_window_and_keep_each_account_busy(
    sqlite_url: str, redis_url: str, tmp_path: Path, sqlite_ctx: Context
) -> None:
    policy = "[account]\nper_second = 2\nper_minute = 60\nmin_gap_s = 0.2\nmax_gap_s = 0.4\n"
    with running_mock_platform(tmp_path / "mock.db") as url:
        names = [f"acct{i}" for i in range(1, 7)]
        add_accounts(sqlite_ctx.engine, names, channel="mock", url=url)
        add_contacts(sqlite_ctx.engine, 1200, channel="mock")
        add_campaign(sqlite_ctx, "c1", names)
        env = cluster_env(sqlite_ctx, sqlite_url, redis_url, {"mock": policy})
        workers = Workers(env, tmp_path)
        workers.start(4)
        try:
            workers.await_ready(sqlite_ctx)
            start(sqlite_ctx, "c1")
            assert wait_for(lambda: len(received(url)) == 6, 60), workers.logs()
            wait_for(lambda: False, 75)  # let every account run into its minute window
            cancel_campaign(sqlite_ctx, "c1")
        finally:
            workers.stop()
        timelines = received(url)
        assert duplicate_attempts(url) == 0
        logs = workers.logs()
    for account, times in timelines.items():
        assert max_in_window(times, 1.0) <= 2, account
        assert max_in_window(times, 60.0) <= 60, account
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.2 - 0.05, (account, min(gaps))  # network jitter on arrival
        possible = greedy_capacity(times[-1] - times[0], 2, 60)
        head = [round(t - times[0], 2) for t in times[:12]]
        assert len(times) >= 0.9 * possible, (account, len(times), possible, head, logs)


def test_a_campaign_is_paced_to_finish_near_its_end_time(
    sqlite_url: str, redis_url: str, tmp_path: Path, sqlite_ctx: Context
) -> None:
    # Two accounts at 1/s could send 240 in the 2-minute window; the campaign has 80.
    policy = "[account]\nper_second = 1\n"
    with running_mock_platform(tmp_path / "mock.db") as url:
        add_accounts(sqlite_ctx.engine, ["a1", "a2"], channel="mock", url=url)
        add_contacts(sqlite_ctx.engine, 80, channel="mock")
        begin = utcnow() + timedelta(seconds=5)
        end = begin + timedelta(seconds=120)
        add_campaign(
            sqlite_ctx, "c1", ["a1", "a2"], start=begin.isoformat() + "+00:00",
            end=end.isoformat() + "+00:00",
        )  # fmt: skip
        env = cluster_env(sqlite_ctx, sqlite_url, redis_url, {"mock": policy})
        workers = Workers(env, tmp_path)
        workers.start(2)
        try:
            start(sqlite_ctx, "c1")
            workers.await_completed(sqlite_ctx, "c1", 170)
        finally:
            workers.stop()
        times = sorted(t for ts in received(url).values() for t in ts)
        assert duplicate_attempts(url) == 0
        got = {m["to"] for m in httpx.get(f"{url}/v1/messages", timeout=60).json()}
    t0 = begin.replace(tzinfo=UTC).timestamp()
    # What became of any message the platform did not get, and when, to find out why.
    missing = [d for d in iter_deliveries(sqlite_ctx.engine, "c1") if d["external_id"] not in got]
    assert len(times) == 80, (t0, missing, campaign_status(sqlite_ctx.engine, "c1"))
    assert times[0] >= t0 - 0.5, "nothing before the start"
    assert times[-1] >= t0 + 0.85 * 120, f"finished at {times[-1] - t0:.1f}s of 120s"
    assert times[-1] <= t0 + 120
    buckets = Counter(int((t - t0) // 10) for t in times)
    average = len(times) / 12
    assert max(buckets.values()) <= 1.5 * average, sorted(buckets.items())


def _state(ctx: Context, name: str) -> Any:
    with ctx.engine.connect() as conn:
        return conn.execute(select(Account.state).where(Account.name == name)).scalar()


def test_429s_make_an_account_back_off_without_being_banned(
    sqlite_url: str, redis_url: str, tmp_path: Path, sqlite_ctx: Context
) -> None:
    # The platform allows 10 a minute and bans after 3 violations; the policy says 15.
    policy = "[account]\nper_second = 5\nper_minute = 15\n"
    with running_mock_platform(tmp_path / "mock.db", per_minute=10, ban_after=3) as url:
        add_accounts(sqlite_ctx.engine, ["a1", "a2"], channel="mock", url=url)
        add_contacts(sqlite_ctx.engine, 30, channel="mock")
        add_campaign(sqlite_ctx, "c1", ["a1", "a2"])
        workers = Workers(
            cluster_env(sqlite_ctx, sqlite_url, redis_url, {"mock": policy}), tmp_path
        )
        workers.start(1)
        try:
            start(sqlite_ctx, "c1")
            workers.await_completed(sqlite_ctx, "c1", 240)
        finally:
            workers.stop()
        stats = httpx.get(f"{url}/v1/stats", timeout=10).json()
        got = Counter(m["to"] for m in httpx.get(f"{url}/v1/messages", timeout=10).json())
    assert sum(s["rate_limited"] for s in stats.values()) >= 1, "the platform did push back"
    assert not any(s["banned"] for s in stats.values()), stats
    assert len(got) == 30 and max(got.values()) == 1
    assert sum(s["duplicate_attempts"] for s in stats.values()) == 0, stats


def test_a_banned_accounts_movable_deliveries_finish_on_the_others(
    sqlite_url: str, redis_url: str, tmp_path: Path, sqlite_ctx: Context
) -> None:
    # a1 talks to a strict platform that bans it at the first violation; a2 and a3 to a
    # lenient one. Contacts 1-3 belong to a1 and must wait; everyone else is delivered once.
    fast = "[account]\nper_second = 20\n"
    with (
        running_mock_platform(tmp_path / "strict.db", per_minute=5, ban_after=1) as strict,
        running_mock_platform(tmp_path / "lenient.db") as lenient,
    ):
        ids = add_accounts(sqlite_ctx.engine, ["a1"], channel="mock", url=strict)
        add_accounts(sqlite_ctx.engine, ["a2", "a3"], channel="mock", url=lenient)
        add_contacts(
            sqlite_ctx.engine, 3, channel="mock", owner_of={i: ids["a1"] for i in (1, 2, 3)}
        )
        add_contacts(sqlite_ctx.engine, 57, channel="mock", start=4)
        add_campaign(sqlite_ctx, "c1", ["a1", "a2", "a3"])
        workers = Workers(cluster_env(sqlite_ctx, sqlite_url, redis_url, {"mock": fast}), tmp_path)
        workers.start(1)
        try:
            start(sqlite_ctx, "c1")

            def settled() -> bool:
                doc = campaign_status(sqlite_ctx.engine, "c1")
                return _state(sqlite_ctx, "a1") == "banned" and doc["counts"]["sent"] >= 54

            assert wait_for(settled, 240), (
                campaign_status(sqlite_ctx.engine, "c1"),
                workers.logs(),
            )
        finally:
            workers.stop()
        messages = [
            m
            for base in (strict, lenient)
            for m in httpx.get(f"{base}/v1/messages", timeout=10).json()
        ]
        assert duplicate_attempts(strict) == duplicate_attempts(lenient) == 0
    per_contact = Counter(m["to"] for m in messages)
    assert max(per_contact.values()) == 1, "nobody is messaged twice"
    assert {f"u{i:06d}" for i in range(4, 61)} <= set(per_contact), "movable ones all arrived"
    doc = campaign_status(sqlite_ctx.engine, "c1")
    assert doc["accounts"]["a1"]["state"] == "banned"
    owner_bound_sent = sum(1 for i in (1, 2, 3) if f"u{i:06d}" in per_contact)
    assert doc["counts"]["pending"] == 3 - owner_bound_sent, doc
