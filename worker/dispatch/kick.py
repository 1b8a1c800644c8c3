"""Wake an account lane by enqueueing its task, at most once at a time.

Nothing waits in the broker (DESIGN 17): a lane that must wait longer than its slice records
when its account can send again (`accounts.next_send_at`, or a cooldown's end) and leaves the
wake-up to the tick.
"""

from __future__ import annotations

from datetime import timedelta

from worker.dispatch import runs
from worker.dispatch.keys import keys
from worker.dispatch.lease import holder
from worker.runtime import Context, enqueue
from worker.store.models import utcnow


def kick_lane(ctx: Context, account_id: int, *, countdown_s: float | None = None) -> bool:
    """Enqueue a lane for the account unless one runs or is already queued."""
    names = keys(ctx)
    if holder(ctx.redis, names.lane(account_id)) is not None:
        return False
    ttl_ms = int(max(30.0, (countdown_s or 0) + 30.0) * 1000)
    if not ctx.redis.set(names.lane_queued(account_id), "1", nx=True, px=ttl_ms):
        return False
    enqueue("siyu.lane", account_id, queue=names.queue, countdown_s=countdown_s)
    return True


def follow_up(ctx: Context, account_id: int, more: bool, wait_s: float | None) -> None:
    """After a lane slice: go on now, or shortly, or leave it to the tick when the wait is long."""
    if not more:
        return
    if wait_s is None or wait_s <= ctx.settings.lane_slice_s:
        kick_lane(ctx, account_id, countdown_s=wait_s or None)
        return
    runs.set_next_send_at(ctx.engine, account_id, utcnow() + timedelta(seconds=wait_s))
