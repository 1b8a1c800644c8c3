"""Everything the console's browser test talks to, as real processes: the mock platform
(delivering inbound messages to the API), a `siyu worker`, `siyu api`, and chromium.

Accounts are made with `siyu accounts add`, as an operator would before opening the console.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from tests.conftest import ROOT, fresh_pg_schema
from tests.support.browser import chromium
from tests.support.cluster import Workers, running_api, worker_env
from tests.support.mockplatform import free_port, running_mock_platform
from tests.support.world import make_reply_context
from worker.runtime import Context
from worker.webhooks import new_secret

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@dataclass
class Cluster:
    """The processes the browser talks to, and the test's own view of the database."""

    db: str  # sqlite | postgresql: the screenshots' folder
    url: str  # siyu api: the console
    platform: str  # the mock platform
    ctx: Context
    browser: Browser
    workers: Workers
    tmp: Path


@contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """A SQLite file in `directory`, or a PostgreSQL schema dropped afterwards (missing
    PostgreSQL: skipped outside CI, failed in CI, as `tests/conftest.py` does)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'siyu.db'}"
        return
    with fresh_pg_schema() as url:
        yield url


@contextmanager
def flushed_redis(url: str) -> Iterator[str]:
    """The test's Redis database, flushed before and after."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def add_accounts_by_cli(env: dict[str, str], platform: str, accounts: Mapping[str, str]) -> None:
    """`siyu accounts add NAME --channel mock --policy P` for each `name -> policy`."""
    for name, policy in accounts.items():
        args = [sys.executable, "-m", "worker", "accounts", "add", name, "--channel", "mock"]
        args += ["--policy", policy, "--config", f"url={platform}", "--config", "timeout_s=2"]
        done = subprocess.run(
            args, env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr


@contextmanager
def running_console(
    db_url: str,
    redis_url: str,
    tmp: Path,
    *,
    token: str,
    policies: dict[str, str],
    accounts: Mapping[str, str],
) -> Iterator[Cluster]:
    """The mock platform, the accounts, one worker, `siyu api` with `token`, and chromium."""
    ctx = make_reply_context(db_url, redis_url, tmp)
    env = worker_env(
        ctx, db_url, redis_url, policies,
        SIYU_API_TOKEN=token, SIYU_WEBHOOK_SECRET=new_secret(),
        SIYU_TICK_INTERVAL_S="1", SIYU_LANE_LEASE_MS="4000",
        SIYU_REPLY_DELAY_MIN_S="0.2", SIYU_REPLY_DELAY_MAX_S="0.5",
    )  # fmt: skip
    port = free_port()
    inbound = f"http://127.0.0.1:{port}/v1/inbound/mock"
    db = db_url.split(":", 1)[0].split("+", 1)[0]
    with running_mock_platform(tmp / "mock.db", inbound_url=inbound, env=env) as platform:
        add_accounts_by_cli(env, platform, accounts)
        workers = Workers(env, tmp, concurrency=4)
        workers.start(1)
        try:
            with running_api(env, tmp / "api.log", port) as url, chromium() as browser:
                yield Cluster(db, url, platform, ctx, browser, workers, tmp)
        finally:
            workers.stop()
            ctx.engine.dispose()
