"""End to end: real `siyu worker` processes, real Redis, the mock platform over HTTP."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import Workers, wait_for, worker_env
from tests.support.mockplatform import duplicate_attempts, running_mock_platform
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_context,
    start,
)
from worker.campaigns.lifecycle import cancel_campaign, pause_campaign, resume_campaign
from worker.campaigns.status import campaign_status, iter_deliveries
from worker.runtime import Context

pytestmark = pytest.mark.slow


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[str]:
    with running_mock_platform(tmp_path / "mock.db") as url:
        yield url


def env_for(ctx: Context, db_url: str, redis_url: str) -> dict[str, str]:
    # These tests are about delivery, not pacing: the mock accounts are unlimited here.
    return worker_env(
        ctx, db_url, redis_url, {"mock": "[account]\n"},
        SIYU_LANE_SLICE_S="10", SIYU_LANE_LEASE_MS="4000", SIYU_TICK_INTERVAL_S="1",
    )  # fmt: skip


def messages(url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{url}/v1/messages", timeout=60).json())


def setup_campaign(
    ctx: Context, url: str, eligible: int, outsiders: int, accounts: int = 5
) -> dict[str, int]:
    names = [f"acct{i}" for i in range(1, accounts + 1)]
    ids = add_accounts(ctx.engine, names, channel="mock", url=url, timeout_s="2")
    add_contacts(ctx.engine, eligible, channel="mock")
    add_contacts(ctx.engine, outsiders, channel="mock", tags=("java",), start=eligible + 1)
    add_campaign(ctx, "c1", names)
    return ids


def assert_exactly_once(ctx: Context, url: str, eligible: int) -> None:
    assert duplicate_attempts(url) == 0, "no idempotency key was ever sent twice"
    got = messages(url)
    per_recipient = Counter(m["to"] for m in got)
    assert len(per_recipient) == eligible, "every eligible contact has a message"
    assert max(per_recipient.values()) == 1, "nobody has two accepted messages"
    assert all(int(to[1:]) <= eligible for to in per_recipient), "nobody outside the segment"
    sample = got[0]
    assert "开课啦" in sample["text"] and "https://g.example.com/1" in sample["text"]
    assert f"学员{int(sample['to'][1:])}" in sample["text"]
    assert "https://edu.example.com/py?" in sample["text"]
    doc = campaign_status(ctx.engine, "c1")
    assert doc["counts"] == {
        "pending": 0,
        "sent": eligible,
        "failed": 0,
        "skipped": 0,
        "unknown": 0,
    }
    assert doc["total"] == eligible


def test_a_5000_contact_campaign_reaches_each_member_once(
    db_url: str, redis_url: str, tmp_path: Path, platform: str
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    setup_campaign(ctx, platform, eligible=5000, outsiders=500)
    workers = Workers(env_for(ctx, db_url, redis_url), tmp_path)
    workers.start(2)
    try:
        start(ctx, "c1")
        workers.await_completed(ctx, "c1", 240)
    finally:
        workers.stop()
    assert_exactly_once(ctx, platform, 5000)
    log = list(iter_deliveries(ctx.engine, "c1"))
    assert len(log) == 5000 and all(r["provider_message_id"] for r in log)


def test_killing_workers_at_random_never_loses_or_duplicates_a_message(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    with running_mock_platform(tmp_path / "mock.db", latency_ms=2) as url:
        setup_campaign(ctx, url, eligible=20_000, outsiders=100)
        workers = Workers(env_for(ctx, db_url, redis_url), tmp_path)
        workers.start(2)
        rng = random.Random(20261125)
        progress = []
        try:
            start(ctx, "c1")
            for _ in range(6):
                time.sleep(rng.uniform(1.0, 4.0))
                progress.append(len(messages(url)))
                workers.kill9_and_restart(rng.randrange(2))
            workers.await_completed(ctx, "c1", 400)
        finally:
            workers.stop()
        assert workers.killed == 6, "every kill hit a live worker"
        assert 0 < progress[-1] < 20_000, f"the kills landed while it was sending: {progress}"
        assert_exactly_once(ctx, url, 20_000)


def test_a_slow_platform_never_sees_a_key_twice_nor_two_sends_of_one_account_at_once(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    """400 ms a send on an unpaced account, two workers: a batch takes longer than any row
    lease, so a reconciler that took a live lane's rows would resend them (DESIGN 13)."""
    ctx = make_context(db_url, redis_url, tmp_path)
    with running_mock_platform(tmp_path / "mock.db", latency_ms=400) as url:
        ids = add_accounts(ctx.engine, ["slow"], channel="mock", url=url, timeout_s="2")
        add_contacts(ctx.engine, 120, channel="mock")
        add_campaign(ctx, "c1", ["slow"])
        env = {**env_for(ctx, db_url, redis_url), "SIYU_LANE_SLICE_S": "5"}
        workers = Workers(env, tmp_path)
        workers.start(2)
        try:
            start(ctx, "c1")
            workers.await_completed(ctx, "c1", 300)
        finally:
            workers.stop()
        assert duplicate_attempts(url) == 0
        got = messages(url)
        assert len(got) == 120 and len({m["to"] for m in got}) == 120
        arrivals = sorted(iso_seconds(m["received_at"]) for m in got)
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        # One lane at a time: each send waits 400 ms for its answer before the next leaves.
        assert min(gaps) >= 0.3, f"two sends of one account overlapped: {min(gaps):.3f}s"
        assert ids


def iso_seconds(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


def test_six_campaigns_started_back_to_back_under_running_workers_all_complete(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The review's reproduction, scaled down: campaigns started one after another while
    workers (and their ticks) run; each must deliver to its whole audience, once."""
    ctx = make_context(db_url, redis_url, tmp_path)
    with running_mock_platform(tmp_path / "mock.db") as url:
        names = ["fast1", "fast2"]
        add_accounts(ctx.engine, names, channel="mock", url=url, timeout_s="2")
        add_contacts(ctx.engine, 3000, channel="mock")
        campaigns = [f"c{i}" for i in range(1, 7)]
        for name in campaigns:
            add_campaign(ctx, name, names)
        workers = Workers(env_for(ctx, db_url, redis_url), tmp_path)
        workers.start(2)
        try:
            for name in campaigns:
                start(ctx, name)
            for name in campaigns:
                workers.await_completed(ctx, name, 300)
        finally:
            workers.stop()
        for name in campaigns:
            doc = campaign_status(ctx.engine, name)
            assert doc["total"] == 3000 and doc["counts"]["sent"] == 3000, (name, doc)
        assert len(messages(url)) == 6 * 3000
        assert duplicate_attempts(url) == 0


def test_pause_stops_sends_resume_never_resends_and_cancel_skips_the_rest(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    with running_mock_platform(tmp_path / "mock.db", latency_ms=20) as url:
        setup_campaign(ctx, url, eligible=3000, outsiders=0, accounts=3)
        workers = Workers(env_for(ctx, db_url, redis_url), tmp_path)
        workers.start(1)
        try:
            start(ctx, "c1")
            assert wait_for(lambda: len(messages(url)) >= 100, 60), workers.logs()
            pause_campaign(ctx.engine, "c1")
            time.sleep(3)  # in-flight groups finish within a few seconds
            frozen = len(messages(url))
            time.sleep(4)
            assert len(messages(url)) == frozen, "no sends after a pause"
            resume_campaign(ctx, "c1")
            assert wait_for(lambda: len(messages(url)) >= frozen + 200, 60)
            cancel_campaign(ctx, "c1")
            time.sleep(3)
            after_cancel = len(messages(url))
            time.sleep(3)
            assert len(messages(url)) == after_cancel
        finally:
            workers.stop()
        got = Counter(m["to"] for m in messages(url))
        assert max(got.values()) == 1 and duplicate_attempts(url) == 0
        doc = campaign_status(ctx.engine, "c1")
        assert doc["status"] == "cancelled"
        assert doc["counts"]["sent"] == len(got)
        assert doc["counts"]["skipped"] == 3000 - len(got)
        reasons = {r["reason"] for r in iter_deliveries(ctx.engine, "c1", "skipped")}
        assert reasons == {"cancelled"}
