"""The production `LimiterBackend`: Lua scripts on Redis, with Redis `TIME` as the clock.

Works with any `redis.Redis` client (TCP or unix socket). Keys share the account's hash tag,
`<prefix>:{<account_key>}:...`, so one script touches one cluster slot, and every key carries
a TTL: slots expire a second plus one to two longest windows after the last slot, the state a day
after the last slot, day counters a day after their local day ends.

A reservation is one round trip, so the client's own work per call shows in the rate: the
script's arguments that only change with the windows are built once, and each thread sends
on a connection pinned for it (`redis.Redis.client()` on the client's pool) instead of
checking one out of the pool and back on every call.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis

from worker.errors import ServiceUnavailable
from worker.limiter.backend import DayQuota, Outcome, Reservation, check_release, check_request
from worker.limiter.model import Window

DEFAULT_PREFIX = "siyu:limiter"


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script of this package and the SHA1 that SCRIPT LOAD replies for it."""

    lua: str
    sha: str

    @classmethod
    def named(cls, name: str) -> Script:
        lua = resources.files("worker.limiter").joinpath(name).read_text(encoding="utf-8")
        return cls(lua, hashlib.sha1(lua.encode("utf-8"), usedforsecurity=False).hexdigest())


RESERVE = Script.named("reserve.lua")
RELEASE = Script.named("release.lua")
_OUTCOMES = tuple(Outcome)  # indexed by the script's outcome number
_NO_DAY = (0, 0, 0)  # day_limit 0: the script leaves the day counter alone
_NO_RECENT = (0,)  # an absent state starts empty
_ASK_RECENT = (-1,)  # an absent state is reported (Outcome.STATE_MISSING)


class RedisBackend:
    """Reservations in Redis; one registered Lua script does each reservation atomically."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        self.client = client
        self.prefix = prefix
        self._pinned = pinned(client)
        self._window_args: tuple[Sequence[Window], tuple[int, ...]] = ((), (0,))

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisBackend:
        """A backend on its own client for `redis://`, `rediss://` or `unix://` URLs."""
        return cls(redis.Redis.from_url(url), prefix)

    def keys(self, account_key: str, day_key: str = "") -> list[str]:
        """The script's KEYS for an account: slots, state and (for a local day) its counter."""
        base = f"{self.prefix}:{{{account_key}}}"
        return [f"{base}:slots", f"{base}:state", f"{base}:day:{day_key}"]

    def reserve(
        self,
        account_key: str,
        *,
        windows: Sequence[Window],
        gaps_ms: Sequence[int],
        open_from_ms: int,
        open_until_ms: int,
        day: DayQuota | None = None,
        recent_if_missing: Sequence[int] | None = (),
    ) -> Reservation:
        """Reserve up to `len(gaps_ms)` send times (see `worker.limiter.backend`)."""
        check_request(account_key, gaps_ms, open_from_ms, open_until_ms, day, recent_if_missing)
        if day is None:
            day_args: tuple[int, ...] = _NO_DAY
        else:
            seed = -1 if day.count_if_missing is None else day.count_if_missing
            day_args = (day.limit, day.end_ms, seed)
        if recent_if_missing is None:
            recent_args: tuple[int, ...] = _ASK_RECENT
        elif recent_if_missing:
            recent_args = (len(recent_if_missing), *recent_if_missing)
        else:
            recent_args = _NO_RECENT
        keys = self.keys(account_key, day.key if day else "")
        args = (
            open_from_ms,
            open_until_ms,
            *day_args,
            *self._window_args_for(windows),
            *recent_args,
            *gaps_ms,
        )
        reply: Any = self._eval(RESERVE, keys, args)
        outcome = _OUTCOMES[reply[0]]  # integer replies arrive as ints
        resume = reply[1] if outcome in (Outcome.CLOSED, Outcome.DAY_FULL) else None
        return Reservation(tuple(reply[2:]), outcome, resume)

    def release(
        self,
        account_key: str,
        *,
        times_ms: Sequence[int],
        windows: Sequence[Window],
        day: str | None,
    ) -> None:
        """Give back reserved send times (see `worker.limiter.backend`)."""
        check_release(account_key, times_ms)
        longest_ms = max((window.span_ms for window in windows), default=0)
        args = (longest_ms, 0 if day is None else 1, *times_ms)
        self._eval(RELEASE, self.keys(account_key, day or ""), args)

    def _window_args_for(self, windows: Sequence[Window]) -> tuple[int, ...]:
        """ARGV's window part, n_windows then span/limit pairs; rebuilt only for new windows.

        An `AccountLimiter` passes the same tuple on every call, so an identity check skips
        the work. The cache is one (windows, args) pair, read and replaced whole, so threads
        sharing a backend with different windows never pair one's windows with the other's
        arguments; and it holds the windows, so their id cannot be reused meanwhile.
        """
        cached = self._window_args
        if cached[0] is not windows:
            pairs = [n for window in windows for n in (window.span_ms, window.limit)]
            cached = self._window_args = (windows, (len(windows), *pairs))
        return cached[1]

    def _eval(self, script: Script, keys: list[str], args: tuple[int, ...]) -> Any:
        """EVALSHA a script, loading it first on a server that does not know it yet."""
        try:
            client = self._pinned.client(self.client)  # pinning connects
            try:
                return client.evalsha(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:  # a new, restarted or flushed server
                client.script_load(script.lua)
                return client.evalsha(script.sha, len(keys), *keys, *args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise ServiceUnavailable(f"Redis is unreachable for rate limiting: {exc}") from exc


class PinnedConnections:
    """Per thread (and process), a single-connection client on one shared client's pool.

    `redis.Redis.client()` pins a connection of the pool, so a call skips the pool's
    checkout, return and readiness check. Every backend on the same shared client uses the
    same `PinnedConnections` (see `pinned`), so a process keeps one connection per thread
    that reserves, however many backends it makes; a thread's connection goes back to the
    pool when the thread ends. A forked child pins its own: it must not share its parent's
    socket. A client made with `single_connection_client=True` is used as it is.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def client(self, shared: redis.Redis) -> redis.Redis:
        """This thread's client on `shared`; made on first use, so errors surface in a call."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            # redis-py leaves `Redis.client()` untyped.
            local.client = shared if shared.connection is not None else shared.client()  # type: ignore[no-untyped-call]
            local.pid = os.getpid()
        client: redis.Redis = local.client
        return client


_PINNED: weakref.WeakKeyDictionary[redis.Redis, PinnedConnections] = weakref.WeakKeyDictionary()
_PINNED_LOCK = threading.Lock()


def pinned(client: redis.Redis) -> PinnedConnections:
    """The pinned connections on `client`, shared by every backend on it while it lives.

    Weakly keyed, and holding no reference to `client`, so they go when the client goes.
    """
    with _PINNED_LOCK:
        found = _PINNED.get(client)
        if found is None:
            found = _PINNED[client] = PinnedConnections()
        return found
