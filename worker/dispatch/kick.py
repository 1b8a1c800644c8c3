"""Wake an account lane by enqueueing its task, at most once at a time."""

from __future__ import annotations

from worker.dispatch.lease import holder, lane_key, lane_queued_key
from worker.runtime import Context, enqueue


def kick_lane(ctx: Context, account_id: int, *, countdown_s: float | None = None) -> bool:
    """Enqueue a lane for the account unless one runs or is already queued."""
    if holder(ctx.redis, lane_key(account_id)) is not None:
        return False
    ttl_ms = int(max(30.0, (countdown_s or 0) + 30.0) * 1000)
    if not ctx.redis.set(lane_queued_key(account_id), "1", nx=True, px=ttl_ms):
        return False
    enqueue("siyu.lane", account_id, countdown_s=countdown_s)
    return True
