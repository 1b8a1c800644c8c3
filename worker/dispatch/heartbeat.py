"""Which `siyu worker` processes are alive: a heartbeat key per worker that expires.

Each worker refreshes `Keys.worker(id)` (host, pid, start time, concurrency) every tick
interval with a TTL of a few intervals, and removes it when it stops cleanly; a crashed one
vanishes when its key expires. The ids also sit in the `Keys.workers` set, so finding the
live ones never scans the keyspace (millions of per-recipient keys); `live_workers` drops
ids whose key has expired, and a live worker adds its id back at every beat.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import redis

from worker.dispatch.keys import keys
from worker.runtime import Context

log = logging.getLogger(__name__)

# The key outlives this many missed beats before the worker counts as gone.
TTL_BEATS = 5


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One live worker process, as its heartbeat describes it."""

    id: str
    host: str
    pid: int
    started_at: str  # ISO 8601, UTC
    concurrency: int

    def describe(self) -> str:
        return (
            f"{self.host} pid {self.pid} (concurrency {self.concurrency}, since {self.started_at})"
        )


def live_workers(ctx: Context) -> list[WorkerInfo]:
    """The workers whose heartbeat has not expired, oldest first."""
    names = keys(ctx)
    ids = sorted(_text(member) for member in ctx.redis.smembers(names.workers))
    if not ids:
        return []
    values = ctx.redis.mget([names.worker(worker_id) for worker_id in ids])
    found, gone = [], []
    for worker_id, value in zip(ids, values, strict=True):
        info = _parse(value) if value is not None else None
        if info is None:
            gone.append(worker_id)
        else:
            found.append(info)
    if gone:
        ctx.redis.srem(names.workers, *gone)
    return sorted(found, key=lambda info: (info.started_at, info.id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse(value: bytes | str) -> WorkerInfo | None:
    try:
        return WorkerInfo(**json.loads(value))
    except (ValueError, TypeError):  # not written by this version of siyu
        return None


class Heartbeat:
    """A daemon thread that keeps this process's heartbeat fresh until `stop()`.

    A thread of its own, not a step of the tick: a slow tick must not make a busy worker
    look dead.
    """

    def __init__(self, ctx: Context, *, concurrency: int) -> None:
        self.ctx = ctx
        self.interval_s = ctx.settings.tick_interval_s
        self.info = WorkerInfo(
            id=uuid.uuid4().hex[:12],
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            concurrency=concurrency,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="siyu-heartbeat", daemon=True)

    def start(self) -> None:
        """Beat once now (the worker is visible at once), then every interval."""
        try:
            self.beat()
        except redis.RedisError:  # the thread tries again
            log.warning("worker heartbeat failed", exc_info=True)
        self._thread.start()

    def beat(self) -> None:
        names = keys(self.ctx)
        ttl_ms = int(self.interval_s * TTL_BEATS * 1000)
        pipe = self.ctx.redis.pipeline(transaction=False)
        pipe.set(names.worker(self.info.id), json.dumps(asdict(self.info)), px=ttl_ms)
        pipe.sadd(names.workers, self.info.id)
        pipe.execute()

    def stop(self) -> None:
        """Stop beating and remove the heartbeat: this worker is gone from now on."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 5)
        names = keys(self.ctx)
        try:
            self.ctx.redis.delete(names.worker(self.info.id))
            self.ctx.redis.srem(names.workers, self.info.id)
        except redis.RedisError:  # it expires on its own
            log.warning("could not remove the worker heartbeat", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except redis.RedisError:  # keep beating: Redis may come back before the TTL
                log.warning("worker heartbeat failed", exc_info=True)
