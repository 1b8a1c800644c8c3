"""The reply drain: one task at a time decides the undecided inbound messages, in batches.

The API stores a message and calls `request_drain`. The first request sets a flag and
enqueues one `siyu.replies` task; the requests after it find the flag and send nothing, so a
burst of webhooks costs one Celery message, not one each. The task (`drain`) takes the
drain's lease, clears the flag, decides a batch (`handle.handle_batch`), and goes on until a
batch finds nothing. Then it releases the lease and looks at the flag once more: a request
made after its last batch started, whose own task found the lease taken and left, is served
by going on. Nothing is lost between two statements: a message is either committed before a
batch reads (and that batch or a later one decides it) or its request sets the flag after the
batch cleared it (and the drain or the request's task goes on).

The tick is the safety net (`stale_undecided`): a message still undecided after `STALE_S`
(a lost Celery message, a worker killed in a drain, whose lease then expires) gets a drain
requested regardless of the flag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, true

from worker.dispatch.keys import keys
from worker.dispatch.kick import kick_lane
from worker.dispatch.lease import Lease
from worker.replies.handle import Batch, handle_batch
from worker.runtime import Context, enqueue
from worker.store import tables
from worker.store.models import utcnow

log = logging.getLogger(__name__)
M = tables.messages.c

QUEUED_TTL_MS = 30_000  # a requested drain whose task was lost is requested again after this
STALE_S = 5.0  # the tick requests a drain for a message undecided this long
LEASE_S = 30.0  # plus the LLM's deadline when one answers: a batch waits for it


def request_drain(ctx: Context, *, force: bool = False) -> bool:
    """Have a drain decide the undecided messages soon; True if a task was enqueued."""
    names = keys(ctx)
    if not ctx.redis.set(names.replies_queued, "1", nx=not force, px=QUEUED_TTL_MS):
        return False
    enqueue("siyu.replies", queue=names.queue)
    return True


def drain(ctx: Context, on_batch: Callable[[Batch], None] | None = None) -> int:
    """Decide every undecided message unless another drain runs; how many this one decided.

    `on_batch` runs after each batch (tests force an ordering there).
    """
    names = keys(ctx)
    lease_s = LEASE_S + (ctx.settings.llm_deadline_s if ctx.settings.llm_base_url else 0.0)
    lease = Lease(ctx.redis, names.replies, int(lease_s * 1000))
    decided = 0
    while lease.acquire():
        try:
            while True:
                ctx.redis.delete(names.replies_queued)
                batch = handle_batch(ctx.engine, ctx.settings)
                decided += len(batch.handled)
                wake_lanes(ctx, batch)
                if on_batch is not None:
                    on_batch(batch)
                if batch.loaded == 0 or not lease.renew():
                    break
        finally:
            lease.release()
        if not ctx.redis.exists(names.replies_queued):
            break
    return decided


def wake_lanes(ctx: Context, batch: Batch) -> None:
    """Wake each account's lane once, for its earliest answer in the batch."""
    due: dict[int, float] = {}
    for handled in batch.handled:
        log.info("inbound message %s: %s", handled.message_id, handled.decision.action)  # no text
        if handled.reply_in_s is not None:
            earlier = due.get(handled.account_id, handled.reply_in_s)
            due[handled.account_id] = min(earlier, handled.reply_in_s)
    for account_id, in_s in due.items():
        kick_lane(ctx, account_id, countdown_s=in_s or None)


def stale_undecided(ctx: Context) -> bool:
    """Whether an inbound message has waited more than `STALE_S` for its decision."""
    since = utcnow() - timedelta(seconds=STALE_S)
    stmt = (
        select(M.id)
        .where(M.decided_at.is_(None), M.inbound == true(), M.created_at < since)
        .order_by(M.id)
        .limit(1)
    )
    with ctx.engine.connect() as conn:
        return conn.execute(stmt).first() is not None
