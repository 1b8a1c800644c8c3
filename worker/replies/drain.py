"""The reply drain: one task at a time decides the undecided inbound messages, in batches.

The API stores a message and calls `request_drain`. The first request sets a flag and
enqueues one `siyu.replies` task; the requests after it find the flag and send nothing, and
the flag stays set while the drain works, so a steady stream of webhooks costs no Celery
message at all. The task (`drain`) takes the drain's lease and decides batches
(`handle.handle_batch`) until one finds nothing. Leaving, it clears the flag and reads once
more: a message committed before the flag was cleared, whose request found it set and sent
nothing, is decided by that read; a message committed after it has its request set the flag
and enqueue a task. That task may find the lease still taken and leave, so the drain, having
released its lease, looks at the flag once more and goes on if it is set. Nothing is lost
between any two of these statements (tests force each ordering).

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

    def step() -> Batch:
        nonlocal decided
        batch = handle_batch(ctx.engine, ctx.settings)
        decided += len(batch.handled)
        wake_lanes(ctx, batch)
        if on_batch is not None:
            on_batch(batch)
        return batch

    def until_empty() -> bool:
        """Batches until one finds nothing (True), or until the lease is lost (False)."""
        while step().loaded:
            if not lease.renew():
                return False
        return True

    while lease.acquire():
        try:
            if not until_empty():
                return decided  # another drain holds it now and carries on
            # Leaving: from here on a request enqueues a task again. One more read decides
            # what was committed before that, whose request found the flag still set.
            ctx.redis.delete(names.replies_queued)
            if not until_empty():
                return decided
        finally:
            lease.release()
        if not ctx.redis.exists(names.replies_queued):
            break  # else a request came after that read, and its task found the lease taken
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
