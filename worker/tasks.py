"""Thin Celery tasks: the only module that knows both Celery and the domain functions."""

from __future__ import annotations

import logging

from worker.runtime import get_context
from worker.runtime.celery_app import celery_app

log = logging.getLogger(__name__)


@celery_app.task(name="siyu.lane")
def lane_task(account_id: int) -> dict[str, object]:
    """One bounded slice of an account lane; re-enqueues itself while work remains."""
    from worker.dispatch.kick import follow_up
    from worker.dispatch.lane import run_lane
    from worker.dispatch.pacers import pacer_for

    ctx = get_context()
    result = run_lane(ctx, account_id, pacer_factory=pacer_for)
    if result.acquired:
        follow_up(ctx, account_id, result.more, result.retry_after_s)
    return {"account_id": account_id, "sent": result.sent, "more": result.more}


@celery_app.task(name="siyu.materialise")
def materialise_task(run_id: int) -> None:
    """Materialise a run's deliveries, waking the lanes of accounts as rows appear."""
    from worker.campaigns.materialise import materialise
    from worker.dispatch.kick import kick_lane

    ctx = get_context()
    kicked: set[int] = set()

    def wake(account_ids: set[int]) -> None:
        for account_id in account_ids - kicked:
            kick_lane(ctx, account_id)
            kicked.add(account_id)

    materialise(ctx, run_id, on_chunk=wake)


@celery_app.task(name="siyu.tick")
def tick_task() -> None:
    from worker.campaigns.tick import tick

    tick(get_context())


@celery_app.task(name="siyu.replies")
def replies_task() -> int:
    """Decide the stored inbound messages (opt-out, handoff, answer) in batches until none
    is left, waking each account's lane for when its answers are due."""
    from worker.replies.drain import drain

    return drain(get_context())
