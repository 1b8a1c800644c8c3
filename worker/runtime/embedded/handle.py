"""`EmbeddedRedis`: one process's use of the embedded server of a state directory."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from worker.errors import ServiceUnavailable
from worker.runtime.embedded import server
from worker.runtime.embedded.locks import FileLock
from worker.runtime.embedded.paths import EmbeddedPaths


class EmbeddedRedis:
    """Uses (and if need be starts) the embedded Redis of `state_dir`.

    `start()` joins the server as a user: it holds a shared lock on `redis-users.lock` from
    then until `stop()` or the end of this process. The server stays up while any user is
    left and is shut down by its supervisor after the last one (see `supervisor`).
    """

    def __init__(self, state_dir: Path | str) -> None:
        self.paths = EmbeddedPaths.of(state_dir)
        self.state_dir = self.paths.state_dir
        self.socket_path = self.paths.socket
        self.pid_path = self.paths.server_pid
        self.log_path = self.paths.server_log
        self._user = FileLock(self.paths.users_lock)
        self._supervisor: subprocess.Popen[bytes] | None = None
        self._mutex = threading.Lock()

    @property
    def url(self) -> str:
        """The redis-py URL (`unix://...`); Celery's form is `celery_url`."""
        return f"unix://{self.socket_path}"

    @property
    def celery_url(self) -> str:
        return f"redis+socket://{self.socket_path}"

    @property
    def joined(self) -> bool:
        """Whether this object is one of the server's users."""
        return self._user.held

    def responding(self) -> bool:
        return server.responding(self.socket_path)

    def supervised(self) -> bool:
        """Whether a server answers and its supervisor is alive (else it is an orphan)."""
        pid = server.read_pid(self.paths.supervisor_pid)
        return (
            pid is not None
            and server.alive(pid, server.SUPERVISOR_MODULE.encode())
            and self.responding()
        )

    def start(self, timeout_s: float = 30.0, *, launch: bool = True) -> str:
        """Join the server, starting it when none runs (unless `launch` is false); its URL."""
        with self._mutex:
            if self._user.held and self.responding():
                return self.url
            self._user.release()
            with _locked(FileLock(self.paths.start_lock), timeout_s, self.state_dir):
                self._join(timeout_s, launch)
        return self.url

    def _join(self, timeout_s: float, launch: bool) -> None:
        """Under the start lock: become a user first, then make sure a server runs."""
        if not self._user.acquire(shared=True, timeout_s=timeout_s):
            raise ServiceUnavailable(f"the embedded Redis in {self.state_dir} is stuck stopping")
        try:
            if self.supervised():
                return
            if not launch:
                raise ServiceUnavailable("the embedded Redis is not running")
            server.clean_stale(self.paths)
            self._supervisor = self._spawn_supervisor(timeout_s)
        except BaseException:
            self._user.release()
            raise

    def _spawn_supervisor(self, timeout_s: float) -> subprocess.Popen[bytes]:
        """Start the supervisor detached from this process and wait until Redis answers."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.paths.supervisor_log.open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603  (a fixed argument list, no shell)
                [sys.executable, "-m", server.SUPERVISOR_MODULE, str(self.state_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # neither a terminal's Ctrl-C nor our death ends it
            )
        deadline = time.monotonic() + timeout_s
        while not self.responding():
            if proc.poll() is not None:
                raise ServiceUnavailable(
                    f"the embedded Redis exited at start-up; see {self.log_path} "
                    f"and {self.paths.supervisor_log}"
                )
            if time.monotonic() >= deadline:
                server.end_process(proc.pid, timeout_s=10.0)
                proc.poll()
                raise ServiceUnavailable(f"the embedded Redis did not start in {timeout_s:.0f}s")
            time.sleep(0.02)
        return proc

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop using the server; if this was its last user, wait until it has shut down."""
        with self._mutex:
            if not self._user.held:
                return
            start = FileLock(self.paths.start_lock)
            got_start = start.acquire(timeout_s=timeout_s)
            try:
                self._user.release()
                pid = server.read_pid(self.paths.supervisor_pid)
                last = got_start and _nobody_holds(self.paths.users_lock)
            finally:
                start.release()
            if last and pid is not None:
                self._wait_supervisor(pid, timeout_s)

    def _wait_supervisor(self, pid: int, timeout_s: float) -> None:
        proc, self._supervisor = self._supervisor, None
        if proc is not None and proc.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout_s)  # ours: reap it too
            return
        server.wait_gone(pid, timeout_s)


@contextmanager
def _locked(lock: FileLock, timeout_s: float, state_dir: Path) -> Iterator[None]:
    """Hold `lock` exclusively for a `with` block; waiting longer than `timeout_s` is an error."""
    if not lock.acquire(timeout_s=timeout_s):
        raise ServiceUnavailable(
            f"another siyu process has been starting or stopping the embedded Redis in "
            f"{state_dir} for over {timeout_s:.0f}s"
        )
    try:
        yield
    finally:
        lock.release()


def _nobody_holds(path: Path, patience_s: float = 0.5) -> bool:
    """Whether no other user holds `path` (exclusive tries, dropped, for `patience_s`).

    The supervisor itself takes the users lock exclusively for an instant whenever the last
    user lets go (its "wait until unused" barrier): one try can land in that instant and
    take the supervisor for a user, and the last user would then not wait for the shutdown.
    A real user holds it for its whole life, so it fails every try.
    """
    deadline = time.monotonic() + patience_s
    while True:
        probe = FileLock(path)
        taken = probe.acquire(timeout_s=0)
        probe.release()
        if taken or time.monotonic() >= deadline:
            return taken
        time.sleep(0.01)
