"""Process plumbing: which Redis to use, the Celery app, and enqueue-by-name.

Domain code enqueues through `enqueue(task_name, ...)` and never imports `worker.tasks`:
only `worker/tasks.py` knows both sides, which keeps imports one-way.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import Engine

from worker.config import Settings, get_settings
from worker.errors import ServiceUnavailable
from worker.runtime.celery_app import celery_app, celery_broker_url, configure_celery
from worker.runtime.embedded import EmbeddedRedis

_lock = threading.Lock()
_embedded: EmbeddedRedis | None = None

# Set when the worker is shutting down: lanes finish their current group and return.
SHUTDOWN = threading.Event()


def embedded_redis(settings: Settings) -> EmbeddedRedis:
    """The embedded server object for this state dir (one per process)."""
    global _embedded  # noqa: PLW0603  (one per process, under _lock)
    with _lock:
        if _embedded is None or _embedded.state_dir != settings.state_dir.resolve():
            _embedded = EmbeddedRedis(settings.state_dir)
        return _embedded


def redis_urls(settings: Settings, *, start: bool = True) -> tuple[str, str]:
    """(redis-py URL, Celery broker URL); with none set, joins (or starts) the embedded one.

    Joining makes this process one of the embedded server's users until it exits, so the
    server stays up under it whichever other siyu process stops first.
    """
    if settings.redis_url:
        return settings.redis_url, celery_broker_url(settings.redis_url)
    emb = embedded_redis(settings)
    if not emb.joined:
        emb.start(launch=start)
        atexit.register(emb.stop)
    return emb.url, celery_broker_url(emb.url)


def connect_redis(url: str) -> redis.Redis:
    """A client for `url`; an unreachable server is a one-line `ServiceUnavailable`."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, health_check_interval=30)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise ServiceUnavailable(f"cannot reach Redis at {url}: {exc}") from exc
    return client


@dataclass
class Context:
    """What domain code needs from the process: settings, database, Redis."""

    settings: Settings
    engine: Engine
    redis: redis.Redis
    extras: dict[str, Any] = field(default_factory=dict)


_context: Context | None = None


def get_context(settings: Settings | None = None) -> Context:
    """The process-wide context, built on first use."""
    global _context  # noqa: PLW0603  (one per process, under _lock)
    with _lock:
        if _context is not None:
            return _context
    from worker.store.db import get_engine

    settings = settings or get_settings()
    ctx = build_context(settings, get_engine(settings.database_url))
    with _lock:
        _context = ctx
    return ctx


def build_context(settings: Settings, engine: Engine) -> Context:
    """A context over `engine`: Redis as `settings` say, and Celery sending to its broker."""
    url, broker = redis_urls(settings)
    client = connect_redis(url)
    configure_celery(broker, visibility_timeout_s=int(max(300, settings.lane_slice_s * 10)))
    return Context(settings=settings, engine=engine, redis=client)


def set_context(ctx: Context | None) -> None:
    """Install a context explicitly (tests, embedded runs)."""
    global _context  # noqa: PLW0603  (one per process, under _lock)
    with _lock:
        _context = ctx


def enqueue(
    task_name: str, *args: Any, queue: str | None = None, countdown_s: float | None = None
) -> None:
    """Send a trigger by task name; losing or duplicating it must be harmless.

    `queue` is the installation's queue (`dispatch.keys.Keys.queue`): two databases sharing
    one Redis must never run each other's tasks.
    """
    celery_app.send_task(task_name, args=list(args), countdown=countdown_s, queue=queue)
