"""The services siyu talks to: Redis, the live workers, the mock platform."""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import urlsplit, urlunsplit

import httpx
import redis
from sqlalchemy import Engine, select

from worker.config import Settings, revealed
from worker.dispatch.heartbeat import live_workers
from worker.runtime import Context
from worker.runtime.embedded import EmbeddedRedis
from worker.services.doctor.report import Finding
from worker.store import tables

MIN_REDIS = (6, 2)


def check_redis(settings: Settings, findings: list[Finding]) -> redis.Redis | None:
    """A client for the configured Redis, or None; never starts the embedded one."""
    if settings.redis_url:
        url, where = settings.redis_url, _without_password(settings.redis_url)
        fix = "start Redis there or correct SIYU_REDIS_URL"
    else:
        embedded = EmbeddedRedis(settings.state_dir)
        where = f"the embedded Redis in {embedded.state_dir}"
        if not embedded.responding():
            fix = "it starts with the first `siyu worker` (or set SIYU_REDIS_URL)"
            findings.append(Finding("redis", False, f"{where} is not running", fix))
            return None
        url, fix = embedded.url, f"restart `siyu worker`, or remove a stale {embedded.socket_path}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        version = str(client.info("server")["redis_version"])
    except (redis.RedisError, ValueError) as exc:
        findings.append(Finding("redis", False, f"cannot reach Redis at {where}: {exc}", fix))
        return None
    if _version(version) < MIN_REDIS:
        needed = ".".join(map(str, MIN_REDIS))
        message = f"Redis {version} at {where} is too old: siyu needs {needed} or newer"
        findings.append(Finding("redis", False, message, f"upgrade Redis to {needed} or newer"))
    else:
        findings.append(Finding("redis", True, f"Redis {version} at {where}"))
    return client


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def check_workers(ctx: Context) -> Finding:
    found = live_workers(ctx)
    if not found:
        return Finding("workers", False, "no worker is running", "start one with `siyu worker`")
    listed = "; ".join(info.describe() for info in found)
    return Finding("workers", True, f"{len(found)} running: {listed}")


def check_mock_platforms(engine: Engine) -> list[Finding]:
    """Every mock platform an account points at answers `GET /v1/stats`."""
    a = tables.accounts.c
    with engine.connect() as conn:
        rows = conn.execute(select(a.name, a.config).where(a.channel == "mock")).all()
    if not rows:
        return [Finding("mock-platform", True, "no account uses the mock channel")]
    by_url: dict[str, list[str]] = defaultdict(list)
    for name, config in rows:
        by_url[str((config or {}).get("url", "")).rstrip("/")].append(name)
    return [_mock_platform(url, sorted(names)) for url, names in sorted(by_url.items())]


def _mock_platform(url: str, accounts: list[str]) -> Finding:
    who = f"accounts {', '.join(accounts)}" if len(accounts) > 1 else f"account {accounts[0]}"
    fix = f"start it (`siyu mock-platform --port {urlsplit(url).port or 8900}`), or re-add {who}"
    fix += " with the URL of a running one"
    try:
        response = httpx.get(f"{url}/v1/stats", timeout=3)
    except (httpx.HTTPError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Finding("mock-platform", False, f"{url} ({who}) does not answer: {reason}", fix)
    if response.status_code != 200:
        message = f"{url}/v1/stats ({who}) answered {response.status_code}"
        return Finding("mock-platform", False, message, fix)
    return Finding("mock-platform", True, f"{url} answers ({who})")


def check_webhook_secret(settings: Settings) -> Finding:
    """Inbound webhooks need a Standard Webhooks secret; without one they are refused."""
    from worker.webhooks import check_secret

    secret = revealed(settings.webhook_secret)
    if not secret:
        return Finding("webhooks", True, "SIYU_WEBHOOK_SECRET not set: inbound webhooks refused")
    try:
        check_secret(secret)
    except ValueError as exc:
        return Finding("webhooks", False, "SIYU_WEBHOOK_SECRET is malformed", str(exc))
    return Finding("webhooks", True, "SIYU_WEBHOOK_SECRET set (Standard Webhooks)")
