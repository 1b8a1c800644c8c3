"""An account lane: the only place that sends for one account, anywhere in the cluster.

A lane holds the account's Redis lease, works for a bounded slice, and reports whether work
remains so its task can re-enqueue itself (DESIGN decisions 2 and 3). Per batch it claims rows,
re-checks suppression, renders, asks the pacer for send times, commits `sending` and only then
calls the channel, and records the outcomes (decision 5).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timedelta

from worker.channels.base import Channel, OutboundMessage
from worker.channels.registry import build_channel
from worker.dispatch import failover, health, outbox, runs
from worker.dispatch.caps import CapGuard
from worker.dispatch.compose import Composer, Prepared, idempotency_key
from worker.dispatch.kick import kick_lane
from worker.dispatch.lease import Lease, lane_key, lane_queued_key
from worker.dispatch.outbox import Claimed, Outcome
from worker.dispatch.pacers import policies
from worker.dispatch.pacing import Pacer, Unpaced
from worker.dispatch.recipients import suppress
from worker.dispatch.sending import Stop, send_one
from worker.dispatch.timing import SendTimer
from worker.limiter import resolve_policy
from worker.runtime import SHUTDOWN, Context
from worker.store.models import AccountState, CampaignStatus, DeliveryState, utcnow

log = logging.getLogger(__name__)

PREPARE_S = 1.0  # claim-side database work happens this long before a reserved send time
GROUP_S = 0.5  # sends reserved this close together share one `sending` commit
PacerFactory = Callable[[Context, runs.AccountInfo], Pacer]


@dataclass
class LaneResult:
    acquired: bool
    sent: int = 0
    more: bool = False
    retry_after_s: float | None = None
    stop_reason: str | None = None


def run_lane(
    ctx: Context,
    account_id: int,
    *,
    slice_s: float | None = None,
    pacer_factory: PacerFactory | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> LaneResult:
    """Work for one account for at most `slice_s`; no-op if another lane holds it."""
    lease = Lease(ctx.redis, lane_key(account_id), ctx.settings.lane_lease_ms)
    if not lease.acquire():
        return LaneResult(acquired=False)
    ctx.redis.delete(lane_queued_key(account_id))
    lane: Lane | None = None
    try:
        account = runs.load_account(ctx.engine, account_id)
        if account is None:
            return LaneResult(acquired=True)
        pacer = (pacer_factory or (lambda _c, _a: Unpaced(clock)))(ctx, account)
        lane = Lane(ctx, account, lease, pacer, clock=clock, sleep=sleep)
        return lane.run(clock() + (slice_s or ctx.settings.lane_slice_s))
    finally:
        if lane is not None:
            lane.close()
        lease.release()


class Lane:
    """The loop of one account lane; see the module docstring."""

    def __init__(
        self,
        ctx: Context,
        account: runs.AccountInfo,
        lease: Lease,
        pacer: Pacer,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.ctx = ctx
        self.engine = ctx.engine
        self.account = account
        self.lease = lease
        self.pacer = pacer
        self.clock = clock
        self.sleep = sleep
        self.channel: Channel = build_channel(account.channel, account.name, account.config)
        self.composer = Composer(ctx.settings, account.channel, self.channel.max_text_len)
        self.result = LaneResult(acquired=True)
        self.stop: Stop | None = None
        self.timer = SendTimer(ctx, account.id, lease, pacer, clock=clock, sleep=sleep)
        self._per_send_s = 0.0
        self._checked_at = clock()
        self.deadline = clock()
        self.waiting_until: float | None = None
        self.kinds: dict[int, str] = {}
        recipient = resolve_policy(policies(ctx), None, account.channel).recipient
        self.caps = CapGuard(ctx.engine, ctx.redis, recipient)
        self._slots: dict[int, float] = {}

    @property
    def lease_lost(self) -> bool:
        return self.timer.lease_lost

    def close(self) -> None:
        self.channel.close()
        self.timer.save(self.ctx, self.account.id)

    def run(self, deadline: float) -> LaneResult:
        self.deadline = deadline
        while self.clock() < deadline and not self.stop and not self.lease_lost:
            if SHUTDOWN.is_set() or self.waiting_until is not None:
                break
            if not self.lease.renew():
                self.timer.lease_lost = True
                break
            if not self._account_may_send():
                return self.result
            live = runs.running_runs(self.engine)
            self.kinds = {run_id: info.kind for run_id, info in live.items()}
            batch = self._claim(live)
            if not batch:
                runs.complete_finished_runs(self.engine, list(live))
                return self.result
            self._process(batch, live)
        self._finish()
        return self.result

    def _claim(self, live: dict[int, runs.RunInfo]) -> list[Claimed]:
        """Claim the next batch; service runs (replies) go before marketing sends."""
        size = self.pacer.batch_size(self.ctx.settings.claim_batch)
        lease_s = max(60.0, self.ctx.settings.lane_slice_s * 2)
        service = [r for r, info in live.items() if info.kind == "service"]
        ordered = [service, [r for r in live if r not in service]] if service else [list(live)]
        for run_ids in ordered:
            batch = outbox.claim(
                self.engine, self.account.id, run_ids, size, self.lease.token, lease_s
            )
            if batch:
                return batch
        return []

    def _finish(self) -> None:
        if self.stop is not None:
            self.result.stop_reason = self.stop.reason
            self.result.retry_after_s = self.stop.retry_after_s or None
            self._apply_stop(self.stop)
            self.result.more = self.stop.account_state == AccountState.COOLDOWN
            return
        live = list(runs.running_runs(self.engine))
        self.result.more = outbox.has_pending(self.engine, self.account.id, live)
        if self.result.more and self.waiting_until is not None:
            self.result.retry_after_s = max(0.0, self.waiting_until - self.clock())

    def _account_may_send(self) -> bool:
        fresh = runs.load_account(self.engine, self.account.id)
        if fresh is None:
            return False
        if fresh.state == AccountState.COOLDOWN and (
            fresh.cooldown_until is None or fresh.cooldown_until <= utcnow()
        ):
            runs.set_account_state(self.engine, fresh.id, AccountState.ACTIVE)
            return True
        return fresh.state == AccountState.ACTIVE

    def _process(self, batch: list[Claimed], live: dict[int, runs.RunInfo]) -> None:
        prepared = self.composer.prepare(self.engine, batch, live)
        outbox.settle(self.engine, prepared.done, self.lease.token)
        if not prepared.todo:
            return
        times = self.pacer.reserve(len(prepared.todo), not_after=self._not_after(prepared, live))
        self._slots = {c.id: t for (c, _), t in zip(prepared.todo, times, strict=False)}
        if len(times) < len(prepared.todo):
            # No slot before the slice or window ends: give the rest back, come back later.
            rest = [c.id for c, _ in prepared.todo[len(times) :]]
            outbox.release(self.engine, rest, self.lease.token)
            self.waiting_until = self.pacer.next_open_s or self.clock() + 1.0
            prepared.todo = prepared.todo[: len(times)]
        i = 0
        while i < len(prepared.todo):
            j = i + 1
            while j < len(prepared.todo) and times[j] <= times[i] + GROUP_S:
                j += 1
            group = prepared.todo[i:j]
            # Wake a little early: the database work before the send must not make it late.
            if self.stop or self.lease_lost or not self.timer.wait_until(times[i] - PREPARE_S):
                outbox.release(self.engine, [c.id for c, _ in prepared.todo[i:]], self.lease.token)
                return
            self._send_group(group)
            i = j

    def _not_after(self, prepared: Prepared, live: dict[int, runs.RunInfo]) -> float:
        """Reserve nothing past this slice or past the end time of a run in the batch."""
        ends = [
            live[c.run_id].end_at for c, _ in prepared.todo if live[c.run_id].end_at is not None
        ]
        limit = self.deadline
        if ends:
            limit = min(limit, min(e for e in ends if e).replace(tzinfo=UTC).timestamp())
        return limit

    def _send_group(self, group: list[tuple[Claimed, OutboundMessage]]) -> None:
        """Send in chunks of about a second each, re-checking the runs between chunks."""
        i = 0
        while i < len(group):
            if self.stop or self.lease_lost or SHUTDOWN.is_set():
                outbox.release(self.engine, [c.id for c, _ in group[i:]], self.lease.token)
                return
            chunk = group[i : i + self._chunk_size()]
            i += len(chunk)
            chunk = self._still_live(chunk)
            started = self.clock()
            self._send_chunk(chunk)
            if chunk:
                per_send = (self.clock() - started) / len(chunk)
                self._per_send_s = 0.7 * self._per_send_s + 0.3 * per_send

    def _chunk_size(self) -> int:
        if self._per_send_s <= 0:
            return 8  # measure first
        return max(1, min(1000, int(1.0 / self._per_send_s)))

    def _still_live(
        self, chunk: list[tuple[Claimed, OutboundMessage]]
    ) -> list[tuple[Claimed, OutboundMessage]]:
        """Drop (and give back) rows whose run was paused or cancelled meanwhile."""
        if self.clock() - self._checked_at < 1.0:
            return chunk
        self._checked_at = self.clock()
        statuses = runs.run_statuses(self.engine, sorted({c.run_id for c, _ in chunk}))
        keep = [(c, m) for c, m in chunk if statuses.get(c.run_id) == CampaignStatus.RUNNING]
        if len(keep) < len(chunk):
            gone = [c.id for c, _ in chunk if statuses.get(c.run_id) != CampaignStatus.RUNNING]
            outbox.release(self.engine, gone, self.lease.token)
        return keep

    def _send_chunk(self, chunk: list[tuple[Claimed, OutboundMessage]]) -> None:
        try:
            chunk = self._within_caps(chunk)
            self._deliver(chunk)
        finally:
            self.caps.unlock()

    def _within_caps(
        self, chunk: list[tuple[Claimed, OutboundMessage]]
    ) -> list[tuple[Claimed, OutboundMessage]]:
        """Hold back recipients another lane is messaging; skip those over their caps."""
        marketing = [c.contact_id for c, _ in chunk if self.kinds.get(c.run_id) == "marketing"]
        if not self.caps.active or not marketing:
            return chunk
        busy = self.caps.lock(marketing)
        capped = self.caps.capped([c for c in marketing if c not in busy])
        if not busy and not capped:
            return chunk
        later = utcnow() + timedelta(seconds=10)
        outcomes = [
            Outcome(c.id, DeliveryState.PENDING, retry_at=later)
            if c.contact_id in busy
            else Outcome(c.id, DeliveryState.SKIPPED, reason="frequency_cap")
            for c, _ in chunk
            if c.contact_id in busy or c.contact_id in capped
        ]
        outbox.settle(self.engine, outcomes, self.lease.token)
        return [(c, m) for c, m in chunk if c.contact_id not in busy | capped]

    def _deliver(self, chunk: list[tuple[Claimed, OutboundMessage]]) -> None:
        """Commit `sending` for the chunk, then send each message at its own reserved time."""
        ids = outbox.mark_sending(self.engine, [c.id for c, _ in chunk], self.lease.token)
        outcomes: list[Outcome] = []
        opted_out: list[int] = []
        for claimed, message in chunk:
            if claimed.id not in ids:
                continue  # lost to the reconciler or a cancel: never send it
            at = self._slots.get(claimed.id, 0.0)
            if (
                self.stop
                or self.lease_lost
                or not self.timer.on_time(at, self.deadline)
                or not self.timer.guard_actual_times()
            ):
                outcomes.append(Outcome(claimed.id, DeliveryState.PENDING, error="not sent"))
                continue
            report = send_one(
                self.channel,
                claimed.id,
                claimed.attempts + 1,
                message,
                self.ctx.settings.max_attempts,
            )
            if report.outcome is not None:
                outcomes.append(report.outcome)
                if report.outcome.state == DeliveryState.SENT:
                    self.result.sent += 1
            if report.opted_out:
                opted_out.append(claimed.contact_id)
            if report.stop:
                self.stop = report.stop
        outbox.settle(self.engine, outcomes, self.lease.token)
        suppress(self.engine, opted_out, "opted_out")

    def _apply_stop(self, stop: Stop) -> None:
        if stop.account_state == AccountState.COOLDOWN:
            health.throttled(
                self.engine, self.account.id, max(stop.retry_after_s, 0.5), stop.reason
            )
            return
        log.error(
            "ALERT account %s is now %s (%s); moving its movable deliveries",
            self.account.name,
            stop.account_state,
            stop.reason,
        )
        runs.set_account_state(self.engine, self.account.id, stop.account_state, stop.reason)
        for receiver in failover.move_movable(self.engine, self.account.id):
            kick_lane(self.ctx, receiver)


__all__ = ["LaneResult", "idempotency_key", "run_lane"]
