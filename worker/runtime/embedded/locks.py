"""`flock` locks on files of the state dir, the embedded server's only coordination.

A lock belongs to one open file description: the kernel drops it when that is closed or its
process dies, SIGKILL included, so a lock can never outlive its holder. Two `FileLock`
objects on one path contend with each other even inside one process.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

_POLL_S = 0.02


class FileLock:
    """A shared or exclusive `flock` on `path`, held until `release()` or process death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, shared: bool = False, timeout_s: float | None = None) -> bool:
        """Take the lock; wait forever (`None`), up to `timeout_s`, or not at all (`0`).

        Returns whether it was taken. Taking a lock this object already holds is an error:
        `flock` would silently convert it instead.
        """
        if self._fd is not None:
            raise ValueError(f"{self.path} is already locked by this object")
        if timeout_s is not None and timeout_s < 0:
            raise ValueError("timeout_s must be None or >= 0")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            taken = _flock(fd, mode, timeout_s)
        except BaseException:
            os.close(fd)
            raise
        if not taken:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Drop the lock (closing the descriptor drops it); a no-op when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _flock(fd: int, mode: int, timeout_s: float | None) -> bool:
    if timeout_s is None:
        fcntl.flock(fd, mode)
        return True
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
        time.sleep(_POLL_S)
