"""Choose and build the pacer of an account lane: limits, health and pacing to the end time.

The limiter keeps the account inside every window of its policy; on top of that, when the
account's live runs have planned end times, the lane spreads what remains over the open time
left ("remaining / time left", DESIGN decision 7), so a campaign ends near its end time
instead of bursting and idling. The last paced send time is kept in Redis so consecutive
lane slices continue the same rhythm.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import ColumnElement, and_, func, select

from worker.dispatch import runs
from worker.dispatch.health import current_multiplier
from worker.dispatch.keys import keys
from worker.dispatch.pacing import Pacer, Unpaced
from worker.limiter import (
    AccountLimiter,
    LocalCalendar,
    LocalDay,
    Policy,
    RedisBackend,
    resolve_policy,
)
from worker.limiter.policy import load_policies
from worker.runtime import Context
from worker.store import tables
from worker.store.models import OPEN_STATES, DeliveryState

D = tables.deliveries.c
HORIZON_S = 15.0


def policies(ctx: Context) -> dict[str, Policy]:
    """The validated policies of this process (loaded once; a bad file fails at start-up)."""
    cached = ctx.extras.get("policies")
    if cached is None:
        cached = load_policies(ctx.settings.rate_limits_dir, missing_ok=True)
        ctx.extras["policies"] = cached
    return cast(dict[str, Policy], cached)


def limiter_for(ctx: Context, account: runs.AccountInfo) -> AccountLimiter:
    """The account's limiter; Redis state it lost is rebuilt from the deliveries table."""
    policy = resolve_policy(policies(ctx), account.policy, account.channel)
    most = max((window.limit for window in policy.account.windows()), default=1)
    return AccountLimiter(
        policy,
        keys(ctx).limiter_account(account.id),
        account.tz,
        RedisBackend(ctx.redis),
        rate_multiplier=current_multiplier(ctx.engine, account.id),
        day_counter=lambda day: sent_on_day(ctx, account.id, day),
        recent_sends=lambda from_ms, to_ms: sent_between(ctx, account.id, from_ms, to_ms, most),
        window_margin_ms=ctx.settings.limit_margin_ms,
    )


# A delivery in one of these states may have reached the platform: it counts against limits.
MAYBE_SENT = (DeliveryState.SENT, DeliveryState.SENDING, DeliveryState.UNKNOWN)


def _naive_utc(at_ms: int) -> datetime:
    """An epoch-ms instant as the naive UTC datetime the tables hold."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).replace(tzinfo=None)


def _send_time() -> ColumnElement[datetime]:
    """When a delivery went out: sent_at once known, else when it was marked sending/unknown."""
    return func.coalesce(D.sent_at, D.updated_at)


def _sent_of(account_id: int, from_ms: int, to_ms: int) -> ColumnElement[bool]:
    """Deliveries of an account that may have gone out in [from_ms, to_ms)."""
    at = _send_time()
    return and_(
        D.account_id == account_id,
        D.state.in_(MAYBE_SENT),
        at >= _naive_utc(from_ms),
        at < _naive_utc(to_ms),
    )


def sent_on_day(ctx: Context, account_id: int, day: LocalDay) -> int:
    """Sends recorded in the database for one local day: rebuilds a day count Redis lost."""
    stmt = select(func.count()).where(_sent_of(account_id, day.start_ms, day.end_ms))
    with ctx.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def sent_between(ctx: Context, account_id: int, from_ms: int, to_ms: int, most: int) -> list[int]:
    """Epoch-ms times of the newest `most` sends in [from_ms, to_ms), newest first.

    Rebuilds the windows and the gap when Redis lost the account's slots.
    """
    at = _send_time()
    stmt = select(at).where(_sent_of(account_id, from_ms, to_ms)).order_by(at.desc()).limit(most)
    with ctx.engine.connect() as conn:
        times = conn.execute(stmt).scalars().all()
    return [round(sent.replace(tzinfo=UTC).timestamp() * 1000) for sent in times]


def pacer_for(ctx: Context, account: runs.AccountInfo) -> Pacer:
    limiter = limiter_for(ctx, account)
    if limiter.limits.is_unlimited and not _has_end_times(ctx):
        return Unpaced()
    return LimiterPacer(ctx, account, limiter)


def _has_end_times(ctx: Context) -> bool:
    return any(info.end_at is not None for info in runs.running_runs(ctx.engine).values())


def open_seconds(calendar: LocalCalendar, from_ms: int, to_ms: int) -> float:
    """Seconds outside quiet hours between two instants."""
    total, at = 0, from_ms
    while at < to_ms:
        period = calendar.open_period(at)
        if period.start_ms >= to_ms:
            break
        total += min(period.end_ms, to_ms) - period.start_ms
        at = period.end_ms
    return total / 1000


def end_margin_s(window_s: float) -> float:
    """Aim to finish a little before the end: 5% of the window, between 2 s and 5 min."""
    return min(300.0, max(2.0, 0.05 * window_s))


class LimiterPacer:
    """Limits from the account's policy, plus pacing toward the live runs' end times."""

    def __init__(
        self,
        ctx: Context,
        account: runs.AccountInfo,
        limiter: AccountLimiter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.account = account
        self.limiter = limiter
        self.clock = clock
        self.next_open_s: float | None = None
        self.gap_s = 0.0
        self._last_key = keys(ctx).pace_last(account.id)

    def batch_size(self, default: int) -> int:
        """Called before each claim: refreshes the pacing gap, then sizes the claim."""
        self.gap_s = self._pace_gap_s()
        size = self.limiter.batch_size(default, HORIZON_S)
        if self.gap_s > 0:
            size = min(size, 1 + int(HORIZON_S / self.gap_s))
        return size

    def reserve(
        self, count: int, *, not_after: float | None = None, paced: bool = True
    ) -> list[float]:
        self.next_open_s = None
        if self.gap_s <= 0 or not paced:
            slots = self.limiter.reserve_until(count, not_after=not_after)
            self.next_open_s = slots.next_open_s
            return slots.times_s
        return self._reserve_paced(count, not_after)

    def release(self, times: Sequence[float]) -> None:
        if times:
            self.limiter.release(list(times))

    def _reserve_paced(self, count: int, not_after: float | None) -> list[float]:
        last = self.ctx.redis.get(self._last_key)
        earliest = self.clock() if last is None else max(self.clock(), float(last) + self.gap_s)
        times: list[float] = []
        for _ in range(count):
            if not_after is not None and earliest >= not_after:
                self.next_open_s = earliest
                break
            slots = self.limiter.reserve_until(1, not_before=earliest, not_after=not_after)
            if not slots.times_s:
                self.next_open_s = slots.next_open_s
                break
            times.append(slots.times_s[0])
            earliest = slots.times_s[0] + self.gap_s
        if times:
            self.ctx.redis.set(self._last_key, repr(times[-1]), ex=86_400)
        return times

    def _pace_gap_s(self) -> float:
        """Seconds between sends that finish this account's work near its end times (0: none)."""
        live = runs.running_runs(self.ctx.engine)
        if not any(info.end_at is not None for info in live.values()):
            return 0.0
        stmt = (
            select(D.run_id, func.count())
            .where(
                D.account_id == self.account.id,
                D.state.in_(list(OPEN_STATES)),
                D.run_id.in_(list(live)),
            )
            .group_by(D.run_id)
        )
        with self.ctx.engine.connect() as conn:
            remaining = conn.execute(stmt).all()
        now_ms = int(self.clock() * 1000)
        rate = 0.0
        for run_id, count in remaining:
            info = live[run_id]
            if info.end_at is None:
                return 0.0  # an open-ended run: as fast as the limits allow
            end_ms = int(info.end_at.replace(tzinfo=UTC).timestamp() * 1000)
            start_ms = int(info.start_at.replace(tzinfo=UTC).timestamp() * 1000)
            target_ms = end_ms - int(end_margin_s((end_ms - start_ms) / 1000) * 1000)
            left_s = open_seconds(self.limiter.calendar, now_ms, target_ms)
            if left_s <= 0:
                return 0.0  # late: catch up as fast as the limits allow
            rate += count / left_s
        return 0.0 if rate <= 0 else 1.0 / rate


__all__ = ["LimiterPacer", "pacer_for"]
