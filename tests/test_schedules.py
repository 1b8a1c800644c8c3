"""Random schedules of everything that can happen to the spine, checked after every step.

A seeded loop interleaves starts, pauses, resumes, cancels, ticks, materialisations (with
other steps landing between their chunks), lane slices on a platform that is sometimes slow to
answer or loses the answer, lanes that die mid-send, leases that expire under a live lane, and
contacts joining late. After every step: no idempotency key reached the platform after it had
accepted it, and no completed run can still gain deliveries. At the end, once everything is
resumed and drained: every member of every run is in exactly one final state.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tests.support.fakes import ScriptedChannel, ScriptedLookupChannel, register_fakes
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_context,
    write_policies,
)
from worker.campaigns import lifecycle
from worker.campaigns.materialise import materialise
from worker.campaigns.tick import tick
from worker.channels.base import OutboundMessage, SendResult
from worker.channels.errors import DeliveryUnknown, Transient
from worker.dispatch.keys import keys
from worker.dispatch.lane import run_lane
from worker.errors import UserError
from worker.runtime import Context
from worker.store import tables
from worker.store.models import OPEN_STATES, utcnow

D, R = tables.deliveries.c, tables.campaign_runs.c
CAMPAIGNS = ("c1", "c2", "c3")
ACCOUNTS = ("a1", "a2")


class Died(BaseException):
    """The worker process died here."""


class Platform:
    """What the scripted channel's platform saw: every attempt, and what it accepted."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.repeats: list[str] = []
        self.mode = "normal"

    def send(self, message: OutboundMessage) -> SendResult:
        key = message.idempotency_key
        if key in ScriptedLookupChannel.accepted:
            self.repeats.append(key)
        roll = self.rng.random()
        if self.mode == "flaky" and roll < 0.15:
            raise Transient("503 not processed")
        if self.mode == "die-before" and roll < 0.2:
            raise Died()
        ScriptedLookupChannel.accepted[key] = f"m-{key}"
        if self.mode == "flaky" and roll < 0.3:
            raise DeliveryUnknown("read timeout after the platform accepted")
        if self.mode == "die-after" and roll < 0.2:
            raise Died()
        return SendResult(f"m-{key}")


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class World:
    def __init__(self, ctx: Context, rng: random.Random) -> None:
        self.ctx = ctx
        self.rng = rng
        self.platform = Platform(rng)
        self.mono = FakeMonotonic()
        self.ids = add_accounts(ctx.engine, list(ACCOUNTS), channel="scripted_lookup")
        for name in ACCOUNTS:
            ScriptedChannel.scripts[name] = self.platform.send
        self.next_contact = 1
        self.join(40)
        for name, where in zip(
            CAMPAIGNS, ("tag = python", "tag = data", "tag = python"), strict=True
        ):
            add_campaign(ctx, name, list(ACCOUNTS), where=where)

    def join(self, count: int) -> None:
        for _ in range(count):
            tags = self.rng.choice([("python",), ("data",), ("python", "data")])
            add_contacts(
                self.ctx.engine, 1, channel="scripted_lookup", tags=tags, start=self.next_contact
            )
            self.next_contact += 1

    # ---- the steps -------------------------------------------------------------------

    def step(self) -> str:
        action = self.rng.choice(
            [
                "start",
                "pause",
                "resume",
                "cancel",
                "tick",
                "materialise",
                "lane",
                "lane",
                "lane",
                "die",
                "expire",
                "join",
            ]
        )
        getattr(self, f"do_{action}")()
        return action

    def do_start(self) -> None:
        self._operator(lifecycle.start_campaign, self.ctx)

    def do_pause(self) -> None:
        self._operator(lifecycle.pause_campaign, self.ctx.engine)

    def do_resume(self) -> None:
        self._operator(lifecycle.resume_campaign, self.ctx)

    def do_cancel(self) -> None:
        if self.rng.random() < 0.3:
            self._operator(lifecycle.cancel_campaign, self.ctx)

    def do_tick(self) -> None:
        tick(self.ctx, force=True)

    def do_materialise(self) -> None:
        """Materialise a begun run, with another step landing between two of its chunks."""
        with self.ctx.engine.connect() as conn:
            begun = list(
                conn.execute(
                    select(R.id).where(R.started_at.is_not(None), R.materialised.is_(False))
                ).scalars()
            )
        if not begun:
            return
        self.ctx.settings.materialise_chunk = 100
        between = self.rng.choice(["pause", "resume", "cancel", "tick", "lane", "join"])
        done = []

        def interleave(_accounts: set[int]) -> None:
            if not done:
                done.append(between)
                getattr(self, f"do_{between}")()

        materialise(self.ctx, self.rng.choice(begun), on_chunk=interleave)

    def do_lane(self, mode: str | None = None) -> None:
        self.platform.mode = mode or self.rng.choice(["normal", "normal", "flaky"])
        account = self.ids[self.rng.choice(ACCOUNTS)]
        self.ctx.settings.claim_batch = self.rng.choice([3, 10, 50])
        run_lane(self.ctx, account, slice_s=2, monotonic=self.mono)

    def do_die(self) -> None:
        """A lane dies mid-send (before or after the platform accepted); its leases run out."""
        try:
            self.do_lane(self.rng.choice(["die-before", "die-after"]))
        except Died:
            self.do_expire()

    def do_expire(self) -> None:
        """Every lease runs out: the lanes' Redis keys go, the rows' leases pass."""
        for account in self.ids.values():
            self.ctx.redis.delete(keys(self.ctx).lane(account))
        with self.ctx.engine.begin() as conn:
            conn.execute(
                update(tables.deliveries)
                .where(D.lease_until.is_not(None))
                .values(lease_until=utcnow())
            )
        self.mono.now += 3600

    def do_join(self) -> None:
        self.join(self.rng.randint(1, 5))

    def _operator(self, action, target) -> None:  # type: ignore[no-untyped-def]
        # The campaign may not be in a state for it: the operator is told, no harm done.
        with contextlib.suppress(UserError):
            action(target, self.rng.choice(CAMPAIGNS))

    # ---- the checks ----------------------------------------------------------------------

    def check(self, after: str) -> None:
        assert not self.platform.repeats, f"after {after}: sent again {self.platform.repeats}"
        with self.ctx.engine.connect() as conn:
            bad = conn.execute(
                select(R.id, R.materialised, func.count(D.id))
                .outerjoin(tables.deliveries, (D.run_id == R.id) & D.state.in_(OPEN_STATES))
                .where(R.status == "completed")
                .group_by(R.id, R.materialised)
            ).all()
            unsnapshotted = conn.execute(
                select(R.id).where(R.status == "running", R.started_at.is_(None))
            ).all()
        for run_id, materialised, open_rows in bad:
            assert materialised and open_rows == 0, f"after {after}: run {run_id} completed early"
        assert not unsnapshotted, f"after {after}: running without an audience snapshot"

    def finish(self) -> None:
        """Resume everything, let every lease run out, drain; every member ends final."""
        for name in CAMPAIGNS:
            for action in (lifecycle.resume_campaign, lifecycle.start_campaign):
                with contextlib.suppress(UserError):
                    action(self.ctx, name)
        self.do_expire()
        for _ in range(60):
            with self.ctx.engine.begin() as conn:  # backoffs pass
                conn.execute(update(tables.deliveries).values(not_before=None))
            tick(self.ctx, force=True)
            with self.ctx.engine.connect() as conn:
                begun = list(
                    conn.execute(
                        select(R.id).where(R.started_at.is_not(None), R.materialised.is_(False))
                    ).scalars()
                )
            for run_id in begun:
                materialise(self.ctx, run_id)
            for account in self.ids.values():
                self.platform.mode = "normal"
                run_lane(self.ctx, account, slice_s=5, monotonic=self.mono)
            self.check("drain")
            with self.ctx.engine.connect() as conn:
                statuses = set(conn.execute(select(R.status)).scalars())
            if statuses <= {"completed", "cancelled"}:
                break
        self._check_final()

    def _check_final(self) -> None:
        with self.ctx.engine.connect() as conn:
            runs = conn.execute(select(R.id, R.status, R.expected_total, R.materialised)).all()
            by_run = Counter(
                dict(conn.execute(select(D.run_id, func.count()).group_by(D.run_id)).all())
            )
            states = Counter(
                dict(conn.execute(select(D.state, func.count()).group_by(D.state)).all())
            )
            sent = conn.execute(select(func.count()).where(D.state == "sent")).scalar_one()
        assert {status for _, status, _, _ in runs} <= {"completed", "cancelled"}, runs
        for run_id, status, expected, materialised in runs:
            if status == "completed" or materialised:
                assert by_run[run_id] == expected, (run_id, status, by_run[run_id], expected)
        assert not set(states) & {"pending", "claimed", "sending"}, states
        assert sent == len(ScriptedLookupChannel.accepted), (sent, states)


@pytest.mark.parametrize("seed", [11, 23, 47])
def test_random_schedules_keep_every_invariant(
    db_url: str, redis_url: str, tmp_path: Path, seed: int
) -> None:
    ScriptedChannel.reset()
    ScriptedLookupChannel.accepted.clear()
    register_fakes()
    rate_limits = write_policies(tmp_path / "rl", {"default": "[account]\n"})
    ctx = make_context(db_url, redis_url, tmp_path, rate_limits_dir=rate_limits)
    world = World(ctx, random.Random(seed))
    for _ in range(120):
        world.check(world.step())
    world.finish()
