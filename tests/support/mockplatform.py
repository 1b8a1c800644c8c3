"""Run the mock platform as a real subprocess for a test: `with running_mock_platform(db) as url`.

The platform gets a free loopback port, is polled until `GET /v1/stats` answers, and is stopped
with SIGTERM (SIGKILL after 5 s) on exit. If it dies while starting, the error carries its
stderr; a port taken by someone else in the meantime is retried on another port.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
PORT_ATTEMPTS = 3


class MockPlatformFailed(RuntimeError):
    """The mock platform did not come up; the message holds its stderr."""


@contextmanager
def running_mock_platform(
    db_path: Path | str,
    *,
    per_minute: int = 0,
    ban_after: int = 0,
    fail_rate: float = 0.0,
    latency_ms: float = 0,
    inbound_url: str | None = None,
    unknown_recipients: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Start `python -m worker.mockplatform` on a free port; yield `http://127.0.0.1:PORT`."""
    options = _flags(per_minute, ban_after, fail_rate, latency_ms, inbound_url, unknown_recipients)
    with tempfile.TemporaryFile() as stderr:
        for attempt in range(PORT_ATTEMPTS):
            port = free_port()
            command = [sys.executable, "-m", "worker.mockplatform", "--host", "127.0.0.1"]
            command += ["--port", str(port), "--db", str(db_path), *options]
            proc = subprocess.Popen(
                command, env=_child_env(env), stdout=subprocess.DEVNULL, stderr=stderr
            )
            try:
                url = f"http://127.0.0.1:{port}"
                if _wait_until_ready(proc, url, stderr, last_try=attempt == PORT_ATTEMPTS - 1):
                    yield url
                    return
            finally:
                stop(proc)
        raise AssertionError("unreachable: the last attempt either yields or raises")


def duplicate_attempts(url: str) -> int:
    """Every send the platform saw again with a key it had already accepted.

    The platform stores a repeat once, so its stored messages cannot show a resend; this can.
    """
    stats = httpx.get(f"{url}/v1/stats", timeout=60).json()
    return sum(int(account["duplicate_attempts"]) for account in stats.values())


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `STOP_TIMEOUT_S`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _flags(
    per_minute: int,
    ban_after: int,
    fail_rate: float,
    latency_ms: float,
    inbound_url: str | None,
    unknown_recipients: Iterable[str],
) -> list[str]:
    flags = ["--per-minute", str(per_minute), "--ban-after", str(ban_after)]
    flags += ["--fail-rate", str(fail_rate), "--latency-ms", str(latency_ms)]
    if inbound_url:
        flags += ["--inbound-url", inbound_url]
    recipients = ",".join(unknown_recipients)
    if recipients:
        flags += ["--unknown-recipients", recipients]
    return flags


def _child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The test's environment plus `extra`, with `worker` importable from any working directory."""
    env = {**os.environ, **(extra or {})}
    spec = importlib.util.find_spec("worker")
    if spec is not None and spec.origin:
        root = str(Path(spec.origin).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _wait_until_ready(
    proc: subprocess.Popen[bytes], url: str, stderr: IO[bytes], *, last_try: bool
) -> bool:
    """True once the platform answers; False if its port was taken (worth another try)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                output = _read_all(stderr)
                if "address already in use" in output.lower() and not last_try:
                    return False
                raise MockPlatformFailed(
                    f"mock platform exited with status {proc.returncode} while starting:\n{output}"
                )
            try:
                if client.get(f"{url}/v1/stats").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise MockPlatformFailed(
        f"mock platform did not answer {url} within {START_TIMEOUT_S:.0f}s:\n{_read_all(stderr)}"
    )


def _read_all(stream: IO[bytes]) -> str:
    stream.seek(0)
    text = stream.read().decode(errors="replace")
    stream.truncate(0)
    stream.seek(0)
    return text
