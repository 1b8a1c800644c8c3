"""`python -m worker.runtime.embedded.supervisor STATE_DIR`: keep the server up while used.

Started detached (its own session, no parent-death signal) by the first user, which already
holds the start lock and its shared users lock. It runs redis-server as a child that dies
with it, then blocks for an exclusive users lock: granted only once every user has ended,
however it ended. It re-checks under the start lock, so no newcomer is half-way in, shuts
the server down with SAVE, removes its files and exits; its locks go with it.
SIGTERM or SIGINT shut the server down at once; a server that dies on its own ends it too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from types import FrameType

from worker.runtime.embedded import server
from worker.runtime.embedded.locks import FileLock
from worker.runtime.embedded.paths import EmbeddedPaths

SHUTDOWN_TIMEOUT_S = 60.0


class _Stop(Exception):
    """Raised by the signal handler to leave the wait and shut down."""


def _on_signal(_sig: int, _frame: FrameType | None) -> None:
    raise _Stop


def wait_until_unused(paths: EmbeddedPaths) -> tuple[FileLock, FileLock]:
    """Block until no process uses the server; return the held (users, start) locks.

    The exclusive users lock proves nobody holds it shared; holding the start lock while
    proving it again means nobody is between taking the start lock and the shared lock.
    """
    users, start = FileLock(paths.users_lock), FileLock(paths.start_lock)
    while True:
        users.acquire()
        users.release()
        start.acquire()
        if users.acquire(timeout_s=0):
            return users, start
        start.release()


def _watch(proc: subprocess.Popen[bytes], stopping: threading.Event, paths: EmbeddedPaths) -> None:
    """A server that exits unless asked to leaves nothing to supervise: clean up and go."""
    code = proc.wait()
    if stopping.is_set():
        return
    print(f"redis-server exited on its own (code {code}); see {paths.server_log}", flush=True)
    server.remove(paths.socket, paths.server_pid, paths.supervisor_pid)
    os._exit(1)


def supervise(paths: EmbeddedPaths) -> int:
    """Run the server until it is unused (or a signal says stop), then shut it down."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    paths.supervisor_pid.write_text(f"{os.getpid()}\n")
    stopping = threading.Event()
    proc = server.launch(paths)
    threading.Thread(target=_watch, args=(proc, stopping, paths), daemon=True).start()
    try:
        wait_until_unused(paths)
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the shutdown itself is not interrupted
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stopping.set()
        server.shutdown(proc, paths, SHUTDOWN_TIMEOUT_S)
        server.remove(paths.supervisor_pid)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m worker.runtime.embedded.supervisor STATE_DIR", file=sys.stderr)
        return 2
    return supervise(EmbeddedPaths.of(args[0]))


if __name__ == "__main__":
    sys.exit(main())
