"""Graceful handover: a worker told to stop (SIGTERM) finishes the send in flight, releases
its account's lane and exits; another worker takes the account at once, not after the lease
would have expired. Measured end to end with real `siyu worker` processes."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import Workers, wait_for, worker_env
from tests.support.mockplatform import duplicate_attempts, running_mock_platform
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns.status import campaign_status
from worker.dispatch.keys import keys
from worker.dispatch.lease import holder

pytestmark = pytest.mark.slow
LEASE_MS = 30_000  # what a lane left unreleased would make the next worker wait
CONTACTS = 60


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[str]:
    with running_mock_platform(tmp_path / "mock.db") as url:
        yield url


def accepted(platform: str) -> int:
    stats = httpx.get(f"{platform}/v1/stats", timeout=30).json()
    return sum(int(account["accepted"]) for account in stats.values())


def test_a_stopped_worker_hands_its_account_over_at_once(
    db_url: str, redis_url: str, tmp_path: Path, platform: str
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    ids = add_accounts(ctx.engine, ["a1"], channel="mock", url=platform, timeout_s="2")
    add_contacts(ctx.engine, CONTACTS, channel="mock")
    add_campaign(ctx, "c1", ["a1"])
    env = worker_env(
        ctx, db_url, redis_url, {"mock": "[account]\nper_second = 4\n"},
        SIYU_LANE_SLICE_S="30", SIYU_LANE_LEASE_MS=str(LEASE_MS), SIYU_TICK_INTERVAL_S="1",
    )  # fmt: skip
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first, second = Workers(env, tmp_path / "first"), Workers(env, tmp_path / "second")
    lane = keys(ctx).lane(ids["a1"])
    first.start(1)
    try:
        start(ctx, "c1")
        assert wait_for(lambda: accepted(platform) >= 5, 60), first.logs()
        second.start(1)
        assert wait_for(lambda: ctx.redis.scard(keys(ctx).workers) >= 2, 60), second.logs()
        holding = holder(ctx.redis, lane)
        assert holding is not None, "the first worker's lane holds the account"
        stopping = time.monotonic()
        first.procs[0].send_signal(signal.SIGTERM)
        first.procs[0].wait(timeout=60)
        exited = time.monotonic()
        assert first.procs[0].returncode == 0, first.logs()
        assert holder(ctx.redis, lane) != holding, "released on the way out, not left to expire"
        before = accepted(platform)
        assert wait_for(lambda: accepted(platform) > before, LEASE_MS / 1000 - 5, 0.05), (
            "the other worker took the account before the old lease could have expired"
        )
        resumed = time.monotonic()
        print(
            f"handover: the stopping worker exited {exited - stopping:.2f} s after SIGTERM; "
            f"the next message went {resumed - stopping:.2f} s after SIGTERM"
        )
        second.await_completed(ctx, "c1", 120)
    finally:
        first.stop()
        second.stop()
    assert accepted(platform) == CONTACTS
    assert duplicate_attempts(platform) == 0, "the send in flight was finished, not repeated"
    assert campaign_status(ctx.engine, "c1")["counts"]["sent"] == CONTACTS
    ctx.engine.dispose()
