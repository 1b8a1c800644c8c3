"""Child processes that cannot outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn`: the kernel sends SIGTERM to the child when its parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session (terminal Ctrl-C is ours to forward, in order)."""
    out: IO[bytes] | int = subprocess.DEVNULL
    if log is not None:
        out = log.open("ab")
    try:
        return subprocess.Popen(  # noqa: S603  (a fixed argument list, no shell)
            list(args),
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            preexec_fn=die_with_parent,  # noqa: PLW1509  (prctl only, no locks taken)
            start_new_session=True,
        )
    finally:
        if not isinstance(out, int):
            out.close()


def stop(
    proc: subprocess.Popen[bytes], *, timeout_s: float = 15.0, sig: int = signal.SIGTERM
) -> None:
    """Ask a child to stop, wait, then kill it; never leaves it running."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=5)
