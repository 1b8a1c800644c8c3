"""Carry one group of a lane's messages out: the last look, the fence, the send, the outcome.

A group is the messages whose slots fall together (`lane.GROUP_S`): they are marked `sending`
in one statement that is also the last look (DESIGN 15: suppression and the run's status as of
that moment), then each waits for its own slot, passes the fence (DESIGN 13) and goes.
Recipient caps are checked here too, under the per-contact locks, and the recipient gap
(`caps.py`): a message too soon after the account's last one to that contact waits. Every slot
that ends up unused is given back to the limiter, and a row marked `sending` but never handed
to the channel goes back to `pending` with its attempt returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine

from worker.channels.base import Channel, OutboundMessage
from worker.dispatch import outbox
from worker.dispatch.caps import CapGuard
from worker.dispatch.fence import Fence
from worker.dispatch.outbox import Claimed, Outcome
from worker.dispatch.pacing import Pacer
from worker.dispatch.recipients import suppress
from worker.dispatch.sending import Stop, send_one
from worker.dispatch.timing import SendTimer
from worker.runtime import SHUTDOWN
from worker.store.models import DeliveryState, utcnow

BUSY_RETRY_S = 10.0  # a recipient another lane is messaging is tried again this much later


@dataclass(frozen=True, slots=True)
class Item:
    """One message of a lane with its reserved slot and the latest time it may leave."""

    claimed: Claimed
    message: OutboundMessage
    at: float
    not_after: float
    marketing: bool


@dataclass
class Tally:
    """What a lane's couriers did: sends, and the reason to stop if one came up."""

    sent: int = 0
    stop: Stop | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    opted_out: dict[str, list[int]] = field(default_factory=dict)  # reason -> contact ids


class Courier:
    """Delivers groups for one account lane; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        channel: Channel,
        fence: Fence,
        timer: SendTimer,
        pacer: Pacer,
        caps: CapGuard,
        max_attempts: int,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.fence = fence
        self.timer = timer
        self.pacer = pacer
        self.caps = caps
        self.max_attempts = max_attempts
        self.tally = Tally()

    @property
    def stopped(self) -> bool:
        return self.tally.stop is not None or self.fence.lost or SHUTDOWN.is_set()

    def give_back(self, items: list[Item]) -> None:
        """Rows still only claimed go back to `pending`; their slots to the limiter."""
        outbox.release(self.engine, [i.claimed.id for i in items], self.fence.token)
        self.pacer.release([i.at for i in items])

    def deliver(self, items: list[Item]) -> None:
        """Send one group; settles every row of it (or gives it back) before returning."""
        try:
            items = self._spaced(self._within_caps(items))
            marked = outbox.mark_sending(
                self.engine, [i.claimed.id for i in items], self.fence.token
            )
            self._missed([i for i in items if i.claimed.id not in marked])
            for item in items:
                if item.claimed.id in marked:
                    self._send(item)
        finally:
            self.caps.unlock()
            outbox.settle(self.engine, self.tally.outcomes, self.fence.token)
            for reason, contact_ids in self.tally.opted_out.items():
                suppress(self.engine, contact_ids, reason)
            self.tally.outcomes, self.tally.opted_out = [], {}

    def _missed(self, items: list[Item]) -> None:
        """Rows the last look refused: suppressed ones are skipped, paused runs' wait."""
        if not items:
            return
        self.pacer.release([i.at for i in items])
        outbox.settle(
            self.engine,
            outbox.last_look_misses(self.engine, [i.claimed.id for i in items], self.fence.token),
            self.fence.token,
        )

    def _within_caps(self, items: list[Item]) -> list[Item]:
        """Lock the marketing recipients; hold back busy ones, skip those over a cap."""
        marketing = [i for i in items if i.marketing]
        if not self.caps.active or not marketing:
            return items
        busy = self.caps.lock([i.claimed.contact_id for i in marketing])
        free = [i for i in marketing if i.claimed.contact_id not in busy]
        over = self.caps.over_cap([i.claimed.contact_id for i in free])
        capped = {id(i) for i, is_over in zip(free, over, strict=True) if is_over}
        later = utcnow() + timedelta(seconds=BUSY_RETRY_S)
        dropped, outcomes = [], []
        for item in marketing:
            if item.claimed.contact_id in busy:
                outcomes.append(Outcome(item.claimed.id, DeliveryState.PENDING, retry_at=later))
            elif id(item) in capped:
                outcomes.append(
                    Outcome(item.claimed.id, DeliveryState.SKIPPED, reason="frequency_cap")
                )
            else:
                continue
            dropped.append(item)
        return self._hold_back(items, dropped, outcomes)

    def _spaced(self, items: list[Item]) -> list[Item]:
        """Hold back messages to contacts this account messaged less than the policy's
        recipient `min_gap_s` ago, until the gap has passed."""
        if not self.caps.gap_ms or not items:
            return items
        allowed = self.caps.space([i.claimed.contact_id for i in items])
        held = [i for i, ok in zip(items, allowed, strict=True) if not ok]
        later = utcnow() + timedelta(milliseconds=self.caps.gap_ms)
        outcomes = [Outcome(i.claimed.id, DeliveryState.PENDING, retry_at=later) for i in held]
        return self._hold_back(items, held, outcomes)

    def _hold_back(
        self, items: list[Item], dropped: list[Item], outcomes: list[Outcome]
    ) -> list[Item]:
        """Settle the rows of `dropped` (only claimed, not yet `sending`) with their
        `outcomes`, give their slots back, and return the rest of `items`."""
        if not dropped:
            return items
        outbox.settle(self.engine, outcomes, self.fence.token)
        self.pacer.release([i.at for i in dropped])
        gone = {id(i) for i in dropped}
        return [i for i in items if id(i) not in gone]

    def _send(self, item: Item) -> None:
        """Wait for the slot, pass the fence, send, and record the outcome."""
        if self.stopped:
            self.pacer.release([item.at])
            self._unsent(item)
            return
        slot = self.timer.on_time(item.at, item.not_after)
        if slot is None:
            self._unsent(item)  # the slot was given back
            return
        if not self.timer.guard_actual_times() or not self.fence.ready():
            self.pacer.release([slot])
            self._unsent(item)
            return
        report = send_one(
            self.channel,
            item.claimed.id,
            item.claimed.attempts + 1,
            item.message,
            self.max_attempts,
            before_retry=lambda: self._retry_slot(item),
        )
        if self.caps.gap_ms:
            self.caps.sent(item.claimed.contact_id)
        if report.outcome is not None:
            self.tally.outcomes.append(report.outcome)
            if report.outcome.state == DeliveryState.SENT:
                self.tally.sent += 1
        if report.opted_out:
            self.tally.opted_out.setdefault(report.opted_out, []).append(item.claimed.contact_id)
        if report.stop:
            self.tally.stop = report.stop

    def _retry_slot(self, item: Item) -> bool:
        """A retry is a send like any other: a slot of its own, the actual-time guard, the fence."""
        fresh = self.pacer.reserve(
            1, not_after=item.not_after, paced=item.claimed.run_id is not None
        )
        if not fresh:
            return False
        if not self.timer.wait_until(fresh[0]):
            self.pacer.release(fresh)
            return False
        return self.timer.guard_actual_times() and self.fence.ready()

    def _unsent(self, item: Item) -> None:
        self.tally.outcomes.append(
            Outcome(item.claimed.id, DeliveryState.PENDING, error="not sent", unsent=True)
        )
