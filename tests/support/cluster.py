"""Real `siyu worker` and `siyu api` processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.world import write_policies
from worker.campaigns.status import campaign_status
from worker.dispatch.heartbeat import live_workers
from worker.runtime import Context, procs


def worker_env(
    ctx: Context, db_url: str, redis_url: str, policies: dict[str, str], **settings: str
) -> dict[str, str]:
    """The environment of a `siyu worker` on `ctx`'s database, Redis, templates and state,
    with these rate-limit policies (`name -> TOML`); `settings` are further variables by
    name (`SIYU_TICK_INTERVAL_S="1"`)."""
    limits = write_policies(ctx.settings.state_dir / "rate_limits", policies)
    return {
        "SIYU_DATABASE_URL": db_url,
        "SIYU_REDIS_URL": redis_url,
        "SIYU_TEMPLATES_DIR": str(ctx.settings.templates_dir),
        "SIYU_STATE_DIR": str(ctx.settings.state_dir),
        "SIYU_RATE_LIMITS_DIR": str(limits),
        **settings,
    }


class Workers:
    """A set of worker processes sharing one database and Redis."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        concurrency: int = 8,
        log_level: str | None = None,
        extra_args: Callable[[int], Sequence[str]] | None = None,
    ) -> None:
        """`log_level` INFO makes the workers log what httpx logs: every request's URL;
        `extra_args(n)` are more options for the n-th worker started (from 1)."""
        self.env = {**env, "PYTHONUNBUFFERED": "1"}
        self.extra_args = extra_args
        self.log_dir = log_dir
        self.concurrency = concurrency
        self.log_level = log_level
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.killed = 0  # kill9_and_restart calls that found the worker alive

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            self.procs.append(self._spawn())

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.started += 1
        args = [sys.executable, "-m", "worker", "worker", "--concurrency", str(self.concurrency)]
        if self.log_level:
            args += ["-l", self.log_level]
        if self.extra_args is not None:
            args += self.extra_args(self.started)
        return procs.spawn(
            args,
            env=self.env,
            log=self.log_dir / f"worker-{self.started}.log",
            cwd=Path(__file__).resolve().parents[2],
        )

    def kill9_and_restart(self, index: int) -> None:
        proc = self.procs[index]
        alive = proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self.killed += alive and proc.returncode == -signal.SIGKILL
        self.procs[index] = self._spawn()

    def stop(self) -> None:
        for proc in self.procs:
            procs.stop(proc, timeout_s=20)

    def logs(self, tail: int | None = 3000) -> str:
        """What the workers wrote, the last `tail` characters of each (None: all of it)."""
        texts = [p.read_text(errors="replace") for p in self.log_dir.glob("worker-*.log")]
        return "\n".join(text if tail is None else text[-tail:] for text in texts)

    def await_ready(self, ctx: Context, timeout_s: float = 60) -> None:
        """Wait until every worker consumes (its heartbeat is live): a test that times sends
        starts them then, not while the workers still boot and compete for the CPU."""

        def ready() -> bool:
            return len(live_workers(ctx)) >= len(self.procs)

        assert wait_for(ready, timeout_s), self.logs()

    def await_completed(self, ctx: Context, campaign: str, timeout_s: float) -> None:
        """Wait for the campaign to complete; fail with its status and the workers' logs."""

        def completed() -> bool:
            return campaign_status(ctx.engine, campaign)["status"] == "completed"

        assert wait_for(completed, timeout_s), (campaign_status(ctx.engine, campaign), self.logs())


@contextmanager
def running_workers(
    env: dict[str, str], log_dir: Path, count: int = 2, **options: Any
) -> Iterator[Workers]:
    """`count` workers (`Workers` takes the `options`), stopped on leaving."""
    workers = Workers(env, log_dir, **options)
    workers.start(count)
    try:
        yield workers
    finally:
        workers.stop()


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


@contextmanager
def running_api(env: dict[str, str], log: Path, port: int) -> Iterator[str]:
    """A real `siyu api` on 127.0.0.1:`port` with this environment; yields its base URL once
    `/healthz` answers, stops it on leaving."""
    args = [sys.executable, "-m", "worker", "api", "--port", str(port)]
    proc = procs.spawn(
        args, env={**env, "PYTHONUNBUFFERED": "1"}, log=log, cwd=Path(__file__).parents[2]
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None  # died: stop waiting, the assert below says why

    try:
        assert wait_for(ready, 60, 0.2) and proc.poll() is None, log.read_text(errors="replace")
        yield url
    finally:
        procs.stop(proc, timeout_s=20)
