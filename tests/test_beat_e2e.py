"""End to end: two real `siyu beat` processes, real workers, the mock platform over HTTP.

A cron campaign due every 5 seconds runs over (at least) three due times; contacts join
between runs and are picked up by the next one; nobody is messaged twice, and every due
time that fired has exactly one run, however the two beats raced for it.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.cluster import Workers, wait_for, worker_env
from tests.support.mockplatform import duplicate_attempts, running_mock_platform
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns.lifecycle import pause_campaign
from worker.runtime import Context, procs
from worker.store import tables

pytestmark = pytest.mark.slow

EVERY_5S = "* * * * * */5"  # a 6th field is seconds
D, F, R = tables.deliveries.c, tables.campaign_firings.c, tables.campaign_runs.c
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[str]:
    with running_mock_platform(tmp_path / "mock.db") as url:
        yield url


def messages(url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{url}/v1/messages", timeout=60).json())


def spawn_beat(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "worker", "beat", "--loglevel", "INFO"]
    return procs.spawn(args, env={**env, "PYTHONUNBUFFERED": "1"}, log=log, cwd=ROOT)


def fired(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        stmt = select(func.count()).where(F.status == "fired")
        return int(conn.execute(stmt).scalar_one())


def run_of_each_contact(ctx: Context) -> dict[int, int]:
    stmt = select(D.contact_id, D.run_id).where(D.state == "sent")
    with ctx.engine.connect() as conn:
        return {contact: run for contact, run in conn.execute(stmt)}


def test_two_beats_run_a_cron_campaign_once_per_due_time_and_message_nobody_twice(
    db_url: str, redis_url: str, tmp_path: Path, platform: str
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    add_accounts(ctx.engine, ["acct1", "acct2"], channel="mock", url=platform, timeout_s="2")
    add_contacts(ctx.engine, 10, channel="mock")
    add_campaign(ctx, "evergreen", ["acct1", "acct2"], cron=EVERY_5S, tz="Asia/Shanghai")
    env = worker_env(
        ctx, db_url, redis_url, {"mock": "[account]\n"},
        SIYU_LANE_SLICE_S="10", SIYU_LANE_LEASE_MS="4000", SIYU_TICK_INTERVAL_S="1",
        SIYU_BEAT_POLL_S="0.2", SIYU_BEAT_GRACE_S="3",
    )  # fmt: skip
    workers = Workers(env, tmp_path)
    workers.start(2)
    beats = [spawn_beat(env, tmp_path / f"beat-{i}.log") for i in (1, 2)]

    def beat_logs() -> str:
        return "\n".join((tmp_path / f"beat-{i}.log").read_text() for i in (1, 2))

    try:
        start(ctx, "evergreen")
        for total in (10, 15, 20):
            if total > 10:  # join between runs: the next due time picks them up
                add_contacts(ctx.engine, 5, channel="mock", start=total - 4)
            arrived = wait_for(lambda t=total: len(messages(platform)) >= t, 60)  # type: ignore[misc]
            assert arrived, (len(messages(platform)), beat_logs(), workers.logs())
        assert wait_for(lambda: fired(ctx) >= 3, 30), beat_logs()
        pause_campaign(ctx.engine, "evergreen")
    finally:
        for beat in beats:
            procs.stop(beat, timeout_s=20)
        workers.stop()

    assert [beat.returncode for beat in beats] == [0, 0], beat_logs()
    assert beat_logs().count("beat stopped") == 2, "both beats stopped cleanly on SIGTERM"
    assert duplicate_attempts(platform) == 0, "no idempotency key was ever sent twice"
    per_recipient = Counter(m["to"] for m in messages(platform))
    assert sorted(per_recipient) == [f"u{i:06d}" for i in range(1, 21)]
    assert set(per_recipient.values()) == {1}, "nobody has two messages"
    runs = run_of_each_contact(ctx)
    first, second, third = ({runs[c] for c in batch} for batch in (
        range(1, 11), range(11, 16), range(16, 21)
    ))  # fmt: skip
    assert max(first) < min(second) and max(second) < min(third), (first, second, third)
    with ctx.engine.connect() as conn:
        fired_runs = list(conn.execute(select(F.run_id).where(F.status == "fired")).scalars())
        all_runs = list(conn.execute(select(R.id)).scalars())
    assert sorted(fired_runs) == sorted(all_runs), "each run belongs to exactly one due time"
    assert beat_logs().count("fired evergreen") == len(fired_runs), beat_logs()
