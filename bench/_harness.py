"""What the end-to-end benchmarks share: the local services they use, a failure that spoils
a figure, progress lines, and a `main` that cleans up whatever way the run ends."""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import redis
from sqlalchemy import create_engine, text

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
BENCH_APP = "siyu-bench"  # the benchmark's own connections, left out of the DB CPU figure
T = TypeVar("T")


class BenchError(RuntimeError):
    """The run cannot produce a trustworthy figure."""


def admin_sql(*statements: str) -> None:
    """Run statements on the maintenance database, outside a transaction (CREATE DATABASE)."""
    admin = create_engine(f"{PG}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        admin.dispose()


def consumers(client: redis.Redis) -> int:
    """Connections blocked on the broker in `client`'s database: the workers ready for work."""
    db = client.connection_pool.connection_kwargs.get("db", 0)
    listing: Any = client.client_list()
    return sum(1 for c in listing if c.get("cmd") == "brpop" and int(c.get("db", -1)) == db)


def progress(line: str) -> None:
    print(f"  .. {line}", file=sys.stderr, flush=True)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`: processes, database


def guarded(prefix: str, run: Callable[[Path], T], cleanup: Callable[[], None]) -> T:
    """`run(tmp)` in a fresh temporary folder; then `cleanup()` and the folder's removal,
    however the run ends (SIGTERM and Ctrl-C included, even from a shell that ignores SIGINT
    in background jobs). A `BenchError` exits with status 1, Ctrl-C with 130."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return run(tmp)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        with contextlib.suppress(Exception):
            cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
