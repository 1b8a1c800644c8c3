"""The periodic, idempotent, database-driven tick that keeps the cluster moving.

Any number of processes may call `tick`; a short Redis lock makes one of them do the work per
interval (DESIGN decision 10). Because the database is the source of truth, a lost or
duplicated Celery message only delays work until the next tick. Every step is a
compare-and-set (`campaigns.transitions`, `dispatch.outbox`), so a tick may land between any
two statements of another process. It sits above both campaigns and dispatch: it begins due
runs, closes windows, reconciles leases, wakes lanes and folds the delivery tallies.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select, update

from worker.campaigns import transitions
from worker.dispatch import backlog, outbox, runs
from worker.dispatch.confirmations import sync_due
from worker.dispatch.keys import keys
from worker.dispatch.kick import kick_lane
from worker.dispatch.reconcile import reconcile
from worker.runtime import Context, enqueue
from worker.store import tables, tallies
from worker.store.models import Account, AccountState, CampaignStatus, DeliveryState, utcnow

log = logging.getLogger(__name__)
__all__ = ["Ticker", "kick_lane", "tick"]

R = tables.campaign_runs.c
A = tables.accounts.c
D = tables.deliveries.c


@dataclass
class TickReport:
    ran: bool = False
    lanes_kicked: list[int] = field(default_factory=list)
    materialising: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    replies_requested: bool = False


def tick(ctx: Context, *, force: bool = False) -> TickReport:
    report = TickReport()
    interval_ms = int(ctx.settings.tick_interval_s * 1000)
    lock = keys(ctx).tick
    if not force and not ctx.redis.set(lock, uuid.uuid4().hex, nx=True, px=interval_ms):
        return report
    report.ran = True
    begin_due_runs(ctx)
    close_windows(ctx)
    skip_cancelled(ctx)
    _wake_cooled_accounts(ctx)
    reconcile(ctx)
    live = list(runs.running_runs(ctx.engine))
    report.materialising = _ensure_materialising(ctx)
    for account_id in backlog.pending_accounts(ctx.engine, live):
        if kick_lane(ctx, account_id):
            report.lanes_kicked.append(account_id)
    report.completed = runs.complete_finished_runs(ctx.engine, live)
    report.replies_requested = _request_stale_drain(ctx)
    sync_due(ctx)
    _purge_hourly(ctx)
    tallies.fold(ctx.engine)
    return report


def _request_stale_drain(ctx: Context) -> bool:
    """A drain for inbound messages left undecided too long (its request was lost)."""
    from worker.replies.drain import request_drain, stale_undecided

    return stale_undecided(ctx) and request_drain(ctx, force=True)


def _purge_hourly(ctx: Context) -> None:
    """Delete conversations past their retention, and sends per minute past keeping, at
    most once an hour per installation."""
    from worker.replies.retention import purge

    if ctx.redis.set(keys(ctx).purge, "1", nx=True, px=3_600_000):
        purged = purge(ctx.engine, ctx.settings.conversation_retention_days)
        if purged:
            log.info("purged %d conversations past their retention", purged)
        tallies.forget_minutes(ctx.engine)


def begin_due_runs(ctx: Context) -> list[int]:
    """Begin scheduled runs whose start time has come, and start their materialisation."""
    begun = [
        run_id
        for run_id in transitions.due_runs(ctx.engine)
        if transitions.begin_run(ctx.engine, run_id)
    ]
    for run_id in begun:
        enqueue("siyu.materialise", run_id, queue=keys(ctx).queue)
    return begun


def close_windows(ctx: Context) -> list[int]:
    """At a run's end time its unsent deliveries become `skipped` (`window_closed`)."""
    with ctx.engine.connect() as conn:
        due = select(R.id).where(R.status == CampaignStatus.RUNNING, R.end_at <= utcnow())
        run_ids = list(conn.execute(due).scalars())
    for run_id in run_ids:
        with ctx.engine.begin() as conn:
            outbox.skip_unsent(conn, [run_id], "window_closed")
    return run_ids


def skip_cancelled(ctx: Context) -> int:
    """Rows of a cancelled run that came back to `pending` after the cancel (an in-flight send
    that turned out not to have left, a lane's unsent rows) are `skipped` (`cancelled`)."""
    cancelled = select(R.id).where(R.status == CampaignStatus.CANCELLED)
    with ctx.engine.begin() as conn:
        return outbox.skip_unsent(conn, cancelled, "cancelled", [DeliveryState.PENDING])


def _ensure_materialising(ctx: Context) -> list[int]:
    """Re-trigger the materialisation of begun runs that have not finished it (lost task)."""
    stmt = select(R.id).where(
        R.status.in_([CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.CANCELLED]),
        R.started_at.is_not(None),
        R.materialised.is_(False),
    )
    with ctx.engine.connect() as conn:
        run_ids = [row[0] for row in conn.execute(stmt)]
    kicked, names = [], keys(ctx)
    for run_id in run_ids:
        if ctx.redis.exists(names.materialise(run_id)):
            continue
        if ctx.redis.set(names.materialise_queued(run_id), "1", nx=True, px=30_000):
            enqueue("siyu.materialise", run_id, queue=names.queue)
            kicked.append(run_id)
    return kicked


def _wake_cooled_accounts(ctx: Context) -> None:
    stmt = (
        update(Account)
        .where(A.state == AccountState.COOLDOWN, A.cooldown_until <= utcnow())
        .values(state=AccountState.ACTIVE, cooldown_until=None, state_reason=None)
    )
    with ctx.engine.begin() as conn:
        conn.execute(stmt)


class Ticker:
    """A daemon thread calling `tick` every interval inside a worker process."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="siyu-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.ctx.settings.tick_interval_s):
            try:
                tick(self.ctx)
            except Exception:  # keep ticking: a transient database or Redis error
                log.exception("tick failed")
