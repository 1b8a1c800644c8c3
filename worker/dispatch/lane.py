"""An account lane: the only place that sends for one account, anywhere in the cluster.

A lane holds the account's Redis lease, works for a bounded slice, and reports whether work
remains so its task can re-enqueue itself (DESIGN decisions 2 and 3). Per batch it claims rows,
re-checks suppression and recipient caps, renders, and reserves send slots for what is left;
then a `Courier` carries the messages out group by group, each marked `sending` just before its
slot, after a last look, behind the fence (DESIGN 13, 15), and records the outcomes (decision 5).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from worker.channels.base import Channel, OutboundMessage
from worker.channels.registry import build_channel
from worker.dispatch import backlog, health, outbox, runs
from worker.dispatch.caps import CapGuard
from worker.dispatch.compose import Composer
from worker.dispatch.courier import Courier, Item
from worker.dispatch.fence import Fence, lane_lease_ms
from worker.dispatch.keys import keys
from worker.dispatch.lease import Lease
from worker.dispatch.outbox import Claimed, Outcome
from worker.dispatch.pacers import policies
from worker.dispatch.pacing import Pacer, Unpaced
from worker.dispatch.sending import Stop
from worker.dispatch.timing import SendTimer
from worker.errors import UserError
from worker.limiter import resolve_policy
from worker.runtime import Context
from worker.store.db import installation_id, tracking_secret
from worker.store.models import AccountState, DeliveryState, utcnow

PREPARE_S = 0.2  # a group's database work starts this long before its first slot
GROUP_S = 0.2  # messages due this soon after a group's first one share its `sending` commit
PacerFactory = Callable[[Context, runs.AccountInfo], Pacer]
Todo = tuple[Claimed, OutboundMessage, bool]  # a message to send, and whether it is marketing


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
    monotonic: Callable[[], float] = time.monotonic,
) -> LaneResult:
    """Work for one account for at most `slice_s`; no-op if another lane holds it.

    `clock` and `sleep` drive send times; `monotonic` times the lease (tests pass fakes).
    """
    account = runs.load_account(ctx.engine, account_id)
    if account is None:
        return LaneResult(acquired=False)
    try:
        channel = build_channel(account.channel, account.name, account.config)
    except UserError as exc:
        health.unusable_config(ctx, account.id, account.name, account.state, exc)
        return LaneResult(acquired=False)
    names = keys(ctx)
    ttl_ms = lane_lease_ms(ctx.settings, channel.send_timeout_s)
    lease = Lease(ctx.redis, names.lane(account_id), ttl_ms, clock=monotonic)
    # This task is out of the broker either way: a later kick may enqueue the next one.
    ctx.redis.delete(names.lane_queued(account_id))
    if not lease.acquire():
        channel.close()
        return LaneResult(acquired=False)
    lane: Lane | None = None
    try:
        fence = Fence(ctx.engine, lease, channel.send_timeout_s, clock=monotonic)
        pacer = (pacer_factory or (lambda _c, _a: Unpaced(clock)))(ctx, account)
        lane = Lane(ctx, account, channel, fence, pacer, clock=clock, sleep=sleep)
        return lane.run(clock() + (slice_s or ctx.settings.lane_slice_s))
    finally:
        if lane is not None:
            lane.close()
        else:
            channel.close()
        lease.release()


class Lane:
    """The loop of one account lane; see the module docstring."""

    def __init__(
        self,
        ctx: Context,
        account: runs.AccountInfo,
        channel: Channel,
        fence: Fence,
        pacer: Pacer,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.ctx = ctx
        self.engine = ctx.engine
        self.account = account
        self.channel = channel
        self.fence = fence
        self.pacer = pacer
        self.clock = clock
        self.result = LaneResult(acquired=True)
        self.timer = SendTimer(
            ctx, account.id, fence, pacer, clock=clock, sleep=sleep, account=account.name
        )
        self.composer = Composer(
            ctx.settings,
            account.channel,
            channel,
            installation_id(ctx.engine),
            tracking_secret(ctx.engine, ctx.settings.tracking_secret),
        )
        recipient = resolve_policy(policies(ctx), account.policy, account.channel).recipient
        self.caps = CapGuard(ctx.engine, ctx.redis, recipient, keys(ctx), account.id)
        self.courier = Courier(
            ctx.engine, channel, fence, self.timer, pacer, self.caps, ctx.settings.max_attempts
        )
        self._per_send_s = 0.0
        self.deadline = clock()
        self.waiting_until: float | None = None
        self.kinds: dict[int, str] = {}

    def close(self) -> None:
        self.channel.close()
        self.timer.save(self.ctx, self.account.id)

    def run(self, deadline: float) -> LaneResult:
        self.deadline = deadline
        if self._work(deadline):
            self._finish()
        self.result.sent = self.courier.tally.sent
        return self.result

    def _work(self, deadline: float) -> bool:
        """Claim and send until the slice ends; False when nothing is left to do."""
        while self.clock() < deadline and not self.courier.stopped:
            if self.waiting_until is not None or not self.fence.keep():
                break
            if not self._account_may_send():
                return False
            live = runs.running_runs(self.engine)
            self.kinds = {run_id: info.kind for run_id, info in live.items()}
            batch = self._claim(live)
            if not batch:
                runs.complete_finished_runs(self.engine, list(live))
                return False
            self._process(batch, live)
        return True

    def _claim(self, live: dict[int, runs.RunInfo]) -> list[Claimed]:
        """Claim the next batch: replies first, then service runs, then marketing sends."""
        size = self.pacer.batch_size(self.ctx.settings.claim_batch)
        service = [r for r, info in live.items() if info.kind == "service"]
        others = [r for r in live if r not in service]
        token, lease_s = self.fence.token, self.fence.db_lease_s
        groups: tuple[list[int] | None, ...] = (None, service, others)  # None: the replies
        for run_ids in groups:
            asked = self.fence.clock()
            if run_ids is None:
                batch = outbox.claim_replies(self.engine, self.account.id, size, token, lease_s)
            else:
                batch = outbox.claim(self.engine, self.account.id, run_ids, size, token, lease_s)
            if batch:
                self.fence.hold([c.id for c in batch], asked)
                return batch
        return []

    def _finish(self) -> None:
        stop = self.courier.tally.stop
        if stop is not None:
            self.result.stop_reason = stop.reason
            self.result.retry_after_s = stop.retry_after_s or None
            self._apply_stop(stop)
            self.result.more = stop.account_state == AccountState.COOLDOWN
            return
        live = list(runs.running_runs(self.engine))
        self.result.more = backlog.has_pending(self.engine, self.account.id, live)
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
        outbox.settle(self.engine, prepared.done, self.fence.token)
        todo = [
            (claimed, message, self._is_marketing(claimed)) for claimed, message in prepared.todo
        ]
        todo = self._drop_capped(todo)
        if not todo:
            return
        ends: dict[int | None, float] = {r: self._not_after(info) for r, info in live.items()}
        ends[None] = self.deadline  # a reply: only the slice bounds it
        replies = todo[0][0].run_id is None  # a batch is all replies or all campaign sends
        times = self.pacer.reserve(
            len(todo), not_after=max(ends[c.run_id] for c, _, _ in todo), paced=not replies
        )
        items, rest = [], []
        for (claimed, message, marketing), at in zip(todo, times, strict=False):
            if at < ends[claimed.run_id]:
                items.append(Item(claimed, message, at, ends[claimed.run_id], marketing))
            else:  # past this row's run end: the slot is of no use to it
                self.pacer.release([at])
                rest.append(claimed.id)
        rest += [claimed.id for claimed, _, _ in todo[len(times) :]]
        if len(times) < len(todo):
            # No slot before the slice or window ends: give the rest back, come back later.
            self.waiting_until = self.pacer.next_open_s or self.clock() + 1.0
        outbox.release(self.engine, rest, self.fence.token)
        self._send_all(items)

    def _is_marketing(self, claimed: Claimed) -> bool:
        """Marketing sends count toward recipient caps; replies and service runs do not."""
        return claimed.run_id is not None and self.kinds.get(claimed.run_id) == "marketing"

    def _drop_capped(self, todo: list[Todo]) -> list[Todo]:
        """Skip marketing recipients already over a cap before any slot is reserved for them."""
        marketing = [t for t in todo if t[2]]
        if not self.caps.active or not marketing:
            return todo
        over = self.caps.over_cap([c.contact_id for c, _, _ in marketing])
        capped = {c.id for (c, _, _), is_over in zip(marketing, over, strict=True) if is_over}
        if capped:
            outcomes = [Outcome(i, DeliveryState.SKIPPED, reason="frequency_cap") for i in capped]
            outbox.settle(self.engine, outcomes, self.fence.token)
        return [t for t in todo if t[0].id not in capped]

    def _not_after(self, info: runs.RunInfo) -> float:
        """Nothing of this run leaves past the slice or past the run's end time."""
        if info.end_at is None:
            return self.deadline
        return min(self.deadline, info.end_at.replace(tzinfo=UTC).timestamp())

    def _send_all(self, items: list[Item]) -> None:
        """Hand the courier one group at a time: the messages whose slots fall together."""
        i = 0
        while i < len(items):
            first = items[i].at
            # Wake a little early: the group's database work must not make it late.
            if self.courier.stopped or not self.timer.wait_until(first - PREPARE_S):
                self.courier.give_back(items[i:])
                return
            j = i + 1
            while j < len(items) and items[j].at <= first + GROUP_S and j - i < self._group_cap():
                j += 1
            started = self.clock()
            self.courier.deliver(items[i:j])
            per_send = (self.clock() - started) / (j - i)
            self._per_send_s = 0.7 * self._per_send_s + 0.3 * per_send
            i = j

    def _group_cap(self) -> int:
        """About a second of sends at the measured pace (8 until measured)."""
        if self._per_send_s <= 0:
            return 8
        return max(1, min(1000, int(1.0 / self._per_send_s)))

    def _apply_stop(self, stop: Stop) -> None:
        if stop.account_state == AccountState.COOLDOWN:
            health.throttled(
                self.engine, self.account.id, max(stop.retry_after_s, 0.5), stop.reason
            )
            return
        health.stop(self.ctx, self.account.id, self.account.name, stop.account_state, stop.reason)


__all__ = ["LaneResult", "run_lane"]
