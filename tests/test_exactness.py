"""Exactly once under forced orderings: the fence, the last look, stops and caps, in-process.

Each test forces the ordering it is about (a lease lost between two sends, an opt-out between
the claim and the send, a crash between the platform's accept and the outcome's commit) from
inside a scripted channel, instead of hoping a sleep lands there.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.support.fakes import ScriptedChannel, ScriptedLookupChannel, register_fakes
from tests.support.rows import make_due, states
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_context,
    start,
    write_policies,
)
from worker.campaigns import lifecycle
from worker.campaigns.materialise import materialise
from worker.campaigns.status import campaign_status
from worker.channels.base import OutboundMessage, SendResult
from worker.channels.errors import AuthExpired, DeliveryUnknown, Transient
from worker.dispatch import backlog, outbox
from worker.dispatch.keys import keys
from worker.dispatch.kick import follow_up
from worker.dispatch.lane import run_lane
from worker.dispatch.pacers import pacer_for
from worker.dispatch.pacing import Unpaced
from worker.dispatch.recipients import suppress
from worker.dispatch.reconcile import reconcile
from worker.runtime import Context
from worker.store import tables
from worker.store.models import utcnow

D, A = tables.deliveries.c, tables.accounts.c


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Context:
    ScriptedChannel.reset()
    ScriptedLookupChannel.accepted.clear()
    register_fakes()
    rate_limits = write_policies(tmp_path / "rl", {"default": "[account]\n"})
    return make_context(db_url, redis_url, tmp_path, claim_batch=50, rate_limits_dir=rate_limits)


def start_campaign(
    ctx: Context, name: str, accounts: list[str], *, force: bool = False, **kw: object
) -> int:
    add_campaign(ctx, name, accounts, **kw)  # type: ignore[arg-type]
    run = start(ctx, name, force=force)
    assert run.id is not None
    materialise(ctx, run.id)
    return run.id


def attempts_by_key() -> Counter[str]:
    return Counter(m.idempotency_key for _, m in ScriptedChannel.attempts)


def accept(message: OutboundMessage) -> SendResult:
    ScriptedLookupChannel.accepted[message.idempotency_key] = "m-" + message.idempotency_key
    return SendResult("m-" + message.idempotency_key)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_lane_whose_lease_ran_out_stops_before_its_next_send(ctx: Context) -> None:
    """The lane stalls for longer than its lease (a GC pause, a slow send) and another lane
    takes the account meanwhile: the stalled lane must not send anything after that."""
    ids = add_accounts(ctx.engine, ["a1"], channel="scripted_lookup")
    add_contacts(ctx.engine, 10, channel="scripted_lookup")
    start_campaign(ctx, "c1", ["a1"])
    mono = FakeMonotonic()
    lane_key = keys(ctx).lane(ids["a1"])

    def stall_then_lose_the_account(message: OutboundMessage) -> SendResult:
        result = accept(message)
        if len(ScriptedChannel.attempts) == 3:
            mono.now += 3600  # far past any lease
            ctx.redis.set(lane_key, "another-lane")  # which another lane then acquired
        return result

    ScriptedChannel.scripts["a1"] = stall_then_lose_the_account
    result = run_lane(ctx, ids["a1"], slice_s=5, monotonic=mono)
    assert result.sent == 3 and len(ScriptedChannel.attempts) == 3
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(D.state, D.attempts)).all()
    assert Counter(state for state, _ in rows) == Counter({"sent": 3, "pending": 7})
    assert {attempts for state, attempts in rows if state == "pending"} == {0}, (
        "rows marked sending but never attempted return their attempt"
    )


def test_an_opt_out_between_the_claim_and_the_send_is_honoured(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, ["a1"], channel="scripted")
    add_contacts(ctx.engine, 30, channel="scripted")
    start_campaign(ctx, "c1", ["a1"])

    def opt_out_contact_20_during_the_first_send(message: OutboundMessage) -> SendResult:
        if len(ScriptedChannel.attempts) == 1:  # the whole batch is claimed by now
            suppress(ctx.engine, [20], "opted_out")
        return SendResult("ok")

    ScriptedChannel.scripts["a1"] = opt_out_contact_20_during_the_first_send
    run_lane(ctx, ids["a1"], slice_s=5)
    assert states(ctx) == Counter({"sent": 29, "skipped": 1})
    assert "u000020" not in {m.to for _, m in ScriptedChannel.attempts}
    with ctx.engine.connect() as conn:
        reason = conn.execute(select(D.reason).where(D.contact_id == 20)).scalar_one()
    assert reason == "opted_out"


def test_a_pause_during_a_batch_stops_the_rest_and_resume_sends_each_once(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, ["a1"], channel="scripted")
    add_contacts(ctx.engine, 40, channel="scripted")
    start_campaign(ctx, "c1", ["a1"])

    def pause_at_the_fifth(message: OutboundMessage) -> SendResult:
        if len(ScriptedChannel.attempts) == 5:
            lifecycle.pause_campaign(ctx.engine, "c1")
        return SendResult("ok")

    ScriptedChannel.scripts["a1"] = pause_at_the_fifth
    run_lane(ctx, ids["a1"], slice_s=5)
    sent_before = states(ctx)["sent"]
    assert sent_before < 40 and states(ctx)["pending"] == 40 - sent_before
    lifecycle.resume_campaign(ctx, "c1")
    run_lane(ctx, ids["a1"], slice_s=5)
    assert states(ctx) == Counter({"sent": 40})
    assert max(attempts_by_key().values()) == 1


def test_a_crash_after_the_platform_accepted_is_settled_by_lookup_not_resent(
    ctx: Context,
) -> None:
    """`sending` is committed before the channel call: a process that dies after the platform
    accepted leaves a `sending` row, which the reconciler looks up instead of resending."""
    ids = add_accounts(ctx.engine, ["a1"], channel="scripted_lookup")
    add_contacts(ctx.engine, 3, channel="scripted_lookup")
    start_campaign(ctx, "c1", ["a1"])

    class Died(BaseException):
        pass

    def accept_then_die(message: OutboundMessage) -> SendResult:
        accept(message)
        raise Died()

    ScriptedChannel.scripts["a1"] = accept_then_die
    with pytest.raises(Died):
        run_lane(ctx, ids["a1"], slice_s=5)
    with ctx.engine.begin() as conn:  # the dead process's leases run out
        conn.execute(update(tables.deliveries).values(lease_until=utcnow()))
    ctx.redis.delete(keys(ctx).lane(ids["a1"]))
    reconcile(ctx)
    assert states(ctx) == Counter({"sent": 1, "pending": 2}), "looked up, not guessed"
    ScriptedChannel.scripts["a1"] = accept
    make_due(ctx)
    run_lane(ctx, ids["a1"], slice_s=5)
    assert states(ctx) == Counter({"sent": 3})
    assert max(attempts_by_key().values()) == 1, attempts_by_key()


def test_credentials_that_stay_expired_pause_the_account_and_move_its_audience(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = add_accounts(ctx.engine, ["a1", "a2"], channel="scripted")
    add_contacts(ctx.engine, 20, channel="scripted")
    start_campaign(ctx, "c1", ["a1", "a2"])
    refreshed = []

    def expired(message: OutboundMessage) -> SendResult:
        raise AuthExpired("token expired")

    ScriptedChannel.scripts["a1"] = expired
    ScriptedChannel.scripts["a2"] = lambda m: SendResult("ok")
    monkeypatch.setattr(
        ScriptedChannel, "refresh_auth", lambda self: refreshed.append(self.account)
    )
    result = run_lane(ctx, ids["a1"], slice_s=5)
    assert result.stop_reason == "auth_expired" and refreshed == ["a1"]
    with ctx.engine.connect() as conn:
        state, reason = conn.execute(select(A.state, A.state_reason).where(A.id == ids["a1"])).one()
    assert (state, reason) == ("paused", "auth_expired")
    assert "failed" not in states(ctx)
    run_lane(ctx, ids["a2"], slice_s=5)
    assert states(ctx) == Counter({"sent": 20})
    assert campaign_status(ctx.engine, "c1")["counts"]["failed"] == 0


def test_recipient_caps_come_from_the_accounts_own_policy(ctx: Context, tmp_path: Path) -> None:
    ctx.settings.rate_limits_dir = write_policies(
        tmp_path / "rl2",
        {"default": "[account]\n", "strict": "[account]\n[recipient]\nper_day = 1\n"},
    )
    ctx.extras.pop("policies", None)
    ids = add_accounts(ctx.engine, ["a1"], channel="scripted")
    with ctx.engine.begin() as conn:
        conn.execute(update(tables.accounts).values(policy="strict"))
    add_contacts(ctx.engine, 5, channel="scripted")
    ScriptedChannel.scripts["a1"] = lambda m: SendResult("ok")
    start_campaign(ctx, "c1", ["a1"])
    run_lane(ctx, ids["a1"], slice_s=5)
    # The plan sees all five at their cap (start would refuse): forced, to test the lane.
    start_campaign(ctx, "c2", ["a1"], force=True)
    run_lane(ctx, ids["a1"], slice_s=5)
    assert states(ctx) == Counter({"sent": 5, "skipped": 5})


@pytest.mark.parametrize(("per_day", "sent"), [(2, 20), (1, 10)])
def test_two_campaigns_with_one_audience_on_one_account_both_complete(
    ctx: Context, tmp_path: Path, per_day: int, sent: int
) -> None:
    """Both runs' rows of a contact land in one batch: the contact must not block itself."""
    ctx.settings.rate_limits_dir = write_policies(
        tmp_path / f"rl{per_day}", {"default": f"[account]\n[recipient]\nper_day = {per_day}\n"}
    )
    ctx.extras.pop("policies", None)
    ids = add_accounts(ctx.engine, ["a1"], channel="scripted")
    add_contacts(ctx.engine, 10, channel="scripted")
    ScriptedChannel.scripts["a1"] = lambda m: SendResult("ok")
    start_campaign(ctx, "c1", ["a1"])
    start_campaign(ctx, "c2", ["a1"])
    ctx.settings.claim_batch = 100  # one batch holds both runs' rows of every contact
    result = run_lane(ctx, ids["a1"], slice_s=5)
    assert not result.more
    assert states(ctx) == Counter({"sent": sent, "skipped": 20 - sent})
    run_lane(ctx, ids["a1"], slice_s=5)  # completes the runs
    assert campaign_status(ctx.engine, "c1")["status"] == "completed"
    assert campaign_status(ctx.engine, "c2")["status"] == "completed"


def test_a_per_day_budget_is_spent_only_on_recipients_who_can_receive(
    ctx: Context, tmp_path: Path
) -> None:
    """Five sends a day, ten recipients of whom five are already capped: the five others
    get all five slots (none is reserved for a capped contact and wasted)."""
    policy = "[account]\nper_day = 5\n[recipient]\nper_day = 1\n"
    ctx.settings.rate_limits_dir = write_policies(tmp_path / "rl5", {"default": policy})
    ctx.extras.pop("policies", None)
    ids = add_accounts(ctx.engine, ["a1", "other"], channel="scripted")
    add_contacts(ctx.engine, 10, channel="scripted")
    ScriptedChannel.scripts["a1"] = lambda m: SendResult("ok")
    ScriptedChannel.scripts["other"] = lambda m: SendResult("ok")
    start_campaign(ctx, "earlier", ["other"])
    with ctx.engine.begin() as conn:  # contacts 1, 3, 5, 7, 9 already got a message today
        odd = D.contact_id.in_([1, 3, 5, 7, 9])
        conn.execute(update(tables.deliveries).where(odd).values(state="sent", sent_at=utcnow()))
        conn.execute(update(tables.deliveries).where(~odd).values(state="skipped"))
    start_campaign(ctx, "c1", ["a1"])
    run_lane(ctx, ids["a1"], slice_s=5, pacer_factory=pacer_for)
    sent_to = sorted(m.to for account, m in ScriptedChannel.attempts if account == "a1")
    assert sent_to == ["u000002", "u000004", "u000006", "u000008", "u000010"]


def test_a_long_wait_is_left_to_the_tick_not_to_the_broker(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 3)
    run_id = start_campaign(ctx, "c1", ["a1"])
    follow_up(ctx, ids["a1"], True, 6 * 3600.0)  # quiet hours until tomorrow morning
    assert ctx.redis.get(keys(ctx).lane_queued(ids["a1"])) is None, "nothing was enqueued"
    assert backlog.pending_accounts(ctx.engine, [run_id]) == []
    with ctx.engine.begin() as conn:  # the morning comes
        conn.execute(update(tables.accounts).values(next_send_at=utcnow()))
    assert backlog.pending_accounts(ctx.engine, [run_id]) == [ids["a1"]]
    follow_up(ctx, ids["a1"], True, 2.0)  # a short wait: re-enqueued with a countdown
    assert ctx.redis.get(keys(ctx).lane_queued(ids["a1"])) is not None


@pytest.mark.parametrize(
    ("state", "cooldown_s"), [("paused", None), ("banned", None), ("cooldown", 300)]
)
def test_the_tick_leaves_accounts_that_cannot_send_asleep(
    ctx: Context, state: str, cooldown_s: int | None
) -> None:
    from datetime import timedelta

    ids = add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 3)
    run_id = start_campaign(ctx, "c1", ["a1"])
    until = utcnow() + timedelta(seconds=cooldown_s) if cooldown_s else None
    with ctx.engine.begin() as conn:
        conn.execute(update(tables.accounts).values(state=state, cooldown_until=until))
    assert backlog.pending_accounts(ctx.engine, [run_id]) == []
    if cooldown_s:
        with ctx.engine.begin() as conn:
            conn.execute(update(tables.accounts).values(cooldown_until=utcnow()))
        assert backlog.pending_accounts(ctx.engine, [run_id]) == [ids["a1"]]


def test_two_claimers_on_one_database_never_share_a_row(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 400)
    run_id = start_campaign(ctx, "c1", ["a1"])
    got: dict[str, list[int]] = {"x": [], "y": []}
    barrier = threading.Barrier(2)

    def claimer(owner: str) -> None:
        barrier.wait()
        while batch := outbox.claim(ctx.engine, ids["a1"], [run_id], 7, owner, 60):
            got[owner] += [c.id for c in batch]

    threads = [threading.Thread(target=claimer, args=(o,)) for o in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not set(got["x"]) & set(got["y"])
    assert len(got["x"]) + len(got["y"]) == 400


def test_a_claim_skips_rows_another_claimer_has_locked(ctx: Context) -> None:
    """Another claimer is between its SELECT ... FOR UPDATE and its commit: a claim now must
    take the next rows at once (SKIP LOCKED), not wait for it or come back empty."""
    if ctx.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE: no row locks to skip")
    ids = add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 20)
    run_id = start_campaign(ctx, "c1", ["a1"])
    holder = ctx.engine.connect()
    tx = holder.begin()
    locked = (
        holder.execute(
            select(D.id).where(D.state == "pending").order_by(D.id).limit(5).with_for_update()
        )
        .scalars()
        .all()
    )
    out: list[list[int]] = []
    worker = threading.Thread(
        target=lambda: out.append(
            [c.id for c in outbox.claim(ctx.engine, ids["a1"], [run_id], 5, "b", 60)]
        )
    )
    try:
        worker.start()
        worker.join(timeout=15)
        assert out, "the claim waited for the other claimer's transaction"
        assert len(out[0]) == 5 and not set(out[0]) & set(locked)
    finally:
        tx.rollback()
        holder.close()
        worker.join(timeout=30)


class RecordingPacer(Unpaced):
    """Unlimited, but counts what is reserved and given back."""

    def __init__(self) -> None:
        super().__init__()
        self.reserved: list[int] = []
        self.released = 0

    def reserve(
        self, count: int, *, not_after: float | None = None, paced: bool = True
    ) -> list[float]:
        self.reserved.append(count)
        return super().reserve(count, not_after=not_after)

    def release(self, times: Sequence[float]) -> None:
        self.released += len(times)


def test_retries_and_the_resend_after_a_refresh_each_take_a_slot(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, ["a1"], channel="scripted")
    add_contacts(ctx.engine, 4, channel="scripted")
    start_campaign(ctx, "c1", ["a1"])
    seen: Counter[str] = Counter()

    def first_try_fails(message: OutboundMessage) -> SendResult:
        seen[message.idempotency_key] += 1
        if seen[message.idempotency_key] == 1:
            key_number = int(message.to[1:])
            raise (Transient("503") if key_number % 2 else AuthExpired("token"))
        return SendResult("ok")

    ScriptedChannel.scripts["a1"] = first_try_fails
    pacer = RecordingPacer()
    run_lane(ctx, ids["a1"], slice_s=5, pacer_factory=lambda _c, _a: pacer)
    assert states(ctx) == Counter({"sent": 4})
    assert pacer.reserved == [4, 1, 1, 1, 1], "one slot for each message, one for each retry"
    assert pacer.released == 0


def test_an_ambiguous_send_the_platform_never_got_backs_off_and_then_fails(
    ctx: Context,
) -> None:
    ctx.settings.max_attempts = 2
    ids = add_accounts(ctx.engine, ["a1"], channel="scripted_lookup")
    add_contacts(ctx.engine, 1, channel="scripted_lookup")
    start_campaign(ctx, "c1", ["a1"])

    def lost(message: OutboundMessage) -> SendResult:
        raise DeliveryUnknown("read timeout")  # and the lookup finds nothing

    ScriptedChannel.scripts["a1"] = lost
    run_lane(ctx, ids["a1"], slice_s=5)
    with ctx.engine.connect() as conn:
        state, not_before = conn.execute(select(D.state, D.not_before)).one()
    assert state == "pending" and not_before is not None and not_before > utcnow()
    make_due(ctx)
    run_lane(ctx, ids["a1"], slice_s=5)
    with ctx.engine.connect() as conn:
        state, reason, attempts = conn.execute(select(D.state, D.reason, D.attempts)).one()
    assert (state, reason, attempts) == ("failed", "retries_exhausted", 2)


def test_a_lane_task_that_finds_its_account_busy_leaves_the_next_kick_free(ctx: Context) -> None:
    """Its task has left the broker: the queued flag must not hold back the next wake-up
    (a resume waited up to the flag's 30 s before anything moved)."""
    ids = add_accounts(ctx.engine, ["a1"])
    names = keys(ctx)
    ctx.redis.set(names.lane(ids["a1"]), "another-lane", px=5000)
    ctx.redis.set(names.lane_queued(ids["a1"]), "1", px=30_000)
    assert run_lane(ctx, ids["a1"], slice_s=1).acquired is False
    assert ctx.redis.get(names.lane_queued(ids["a1"])) is None
