"""Account health (AIMD, failover), recipient caps, window closing and priority, in-process."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.support.fakes import ScriptedChannel, register_fakes
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_context,
    start,
    write_policies,
)
from worker.campaigns.materialise import materialise
from worker.campaigns.tick import close_windows
from worker.channels.base import OutboundMessage, SendResult
from worker.channels.errors import AccountBanned
from worker.channels.memory import HUB
from worker.dispatch import health
from worker.dispatch.caps import CapGuard
from worker.dispatch.keys import keys
from worker.dispatch.lane import run_lane
from worker.limiter import RecipientLimits
from worker.runtime import Context
from worker.store import tables
from worker.store.models import Account, utcnow

D = tables.deliveries.c


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Context:
    HUB.clear()
    ScriptedChannel.reset()
    register_fakes()
    return make_context(db_url, redis_url, tmp_path)


def account_row(ctx: Context, name: str) -> Account:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(tables.accounts).where(tables.accounts.c.name == name)).one()
    return Account(**row._mapping)


def test_recovery_is_additive_per_clean_minute_and_capped_at_the_full_rate() -> None:
    assert health.recovered(0.25, 59) == 0.25
    assert health.recovered(0.25, 60) == pytest.approx(0.35)
    assert health.recovered(0.25, 600) == 1.0


def test_throttling_halves_the_rate_with_a_floor_and_sets_a_jittered_cooldown(
    ctx: Context,
) -> None:
    ids = add_accounts(ctx.engine, ["a1"])
    for expected in (0.5, 0.25, 0.125, 0.1, 0.1):
        health.throttled(ctx.engine, ids["a1"], 10.0, "rate_limited")
        row = account_row(ctx, "a1")
        assert row.rate_multiplier == pytest.approx(expected)
    assert row.state == "cooldown"
    assert row.cooldown_until is not None
    left = (row.cooldown_until - utcnow()).total_seconds()
    assert 10.0 < left < 10.0 * 1.25 + 1.5


def test_the_multiplier_recovers_when_read_after_clean_minutes(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, ["a1"])
    health.throttled(ctx.engine, ids["a1"], 1.0, "rate_limited")
    with ctx.engine.begin() as conn:
        conn.execute(
            update(tables.accounts).values(rate_changed_at=utcnow() - timedelta(seconds=125))
        )
    assert health.current_multiplier(ctx.engine, ids["a1"]) == pytest.approx(0.7)
    assert account_row(ctx, "a1").rate_multiplier == pytest.approx(0.7)


def test_a_ban_moves_movable_rows_to_healthy_peers_and_keeps_owner_bound_ones(
    ctx: Context,
) -> None:
    ids = add_accounts(ctx.engine, ["a1", "a2", "a3"], channel="scripted")
    add_contacts(ctx.engine, 4, channel="scripted", owner_of={i: ids["a1"] for i in range(1, 5)})
    add_contacts(ctx.engine, 40, channel="scripted", start=5)
    add_campaign(ctx, "c1", ["a1", "a2", "a3"])
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
    ScriptedChannel.scripts["a1"] = lambda m: (_ for _ in ()).throw(AccountBanned("banned"))
    result = run_lane(ctx, ids["a1"], slice_s=5)
    assert result.stop_reason == "account_banned"
    assert account_row(ctx, "a1").state == "banned"
    with ctx.engine.connect() as conn:
        left_on_a1 = conn.execute(
            select(D.contact_id).where(D.account_id == ids["a1"], D.state == "pending")
        ).scalars()
        owners = Counter(conn.execute(select(D.account_id).where(D.state == "pending")).scalars())
    assert sorted(left_on_a1) == [1, 2, 3, 4]
    assert owners[ids["a2"]] > 0 and owners[ids["a3"]] > 0
    assert sum(owners.values()) == 44


def test_an_account_whose_stored_config_went_bad_is_paused_and_its_rows_move(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing is sent anywhere: the lane stops before it builds a client.
    good = {"token": "7000000001:" + "A" * 35, "api_base": "http://127.0.0.1:9"}
    ids = add_accounts(ctx.engine, ["a1", "a2"], channel="telegram", **good)
    add_contacts(ctx.engine, 10, channel="telegram")
    add_campaign(ctx, "c1", ["a1", "a2"])
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
    with ctx.engine.begin() as conn:  # `accounts add` refused this; an upgrade might since
        conn.execute(
            update(tables.accounts)
            .where(tables.accounts.c.name == "a1")
            .values(config={"token": "went-bad"})
        )
    with caplog.at_level(logging.ERROR):
        assert not run_lane(ctx, ids["a1"], slice_s=5).acquired
    row = account_row(ctx, "a1")
    assert (row.state, row.state_reason) == ("paused", "config")
    with ctx.engine.connect() as conn:
        owners = Counter(conn.execute(select(D.account_id).where(D.state == "pending")).scalars())
    assert owners == {ids["a2"]: 10}, "every pending row moved to the healthy peer"
    [alert] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "account a1 is now paused (config)" in alert and "not a bot token" in alert
    assert "went-bad" not in alert
    caplog.clear()
    assert not run_lane(ctx, ids["a1"], slice_s=5).acquired
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "alerted once"


def test_recipient_caps_count_marketing_sends_across_campaigns(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, ["a1", "a2"])
    add_contacts(ctx.engine, 5)
    add_campaign(ctx, "c1", ["a1"])
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
    run_lane(ctx, ids["a1"], slice_s=5)
    guard = guard_for(ctx, RecipientLimits(per_day=1, per_week=3))
    assert guard.over_cap([1, 2, 3, 4, 5]) == [True] * 5
    loose = guard_for(ctx, RecipientLimits(per_day=2))
    assert loose.over_cap([1, 2, 1, 1]) == [False, False, True, True]


def guard_for(ctx: Context, limits: RecipientLimits) -> CapGuard:
    return CapGuard(ctx.engine, ctx.redis, limits, keys(ctx))


def test_a_second_lane_waits_for_a_recipient_another_lane_holds(ctx: Context) -> None:
    first = guard_for(ctx, RecipientLimits(per_day=1))
    second = guard_for(ctx, RecipientLimits(per_day=1))
    assert first.lock([1, 2]) == set()
    assert second.lock([2, 3]) == {2}
    first.unlock()
    assert second.lock([2]) == set()


def test_a_contact_listed_twice_never_blocks_itself(ctx: Context) -> None:
    guard = guard_for(ctx, RecipientLimits(per_day=1))
    assert guard.lock([7, 7, 8]) == set()
    assert guard.lock([7]) == set(), "already ours"
    assert guard.held == {7, 8}
    guard.unlock()


def test_capped_contacts_are_skipped_with_reason_frequency_cap(
    ctx: Context, tmp_path: Path
) -> None:
    policy = {"memory": "[account]\n[recipient]\nper_day = 1\n"}
    ctx.settings.rate_limits_dir = write_policies(tmp_path / "rl", policy)
    ids = add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 3)
    add_campaign(ctx, "c1", ["a1"])
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
    run_lane(ctx, ids["a1"], slice_s=5)
    add_campaign(ctx, "c2", ["a1"])
    # The plan sees all three at their cap (start would refuse): forced, to test the lane.
    materialise(ctx, start(ctx, "c2", force=True).id)  # type: ignore[arg-type]
    run_lane(ctx, ids["a1"], slice_s=5)
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(D.run_id, D.state, D.reason).order_by(D.id)).all()
    assert [(s, r) for _, s, r in rows] == [("sent", None)] * 3 + [("skipped", "frequency_cap")] * 3


def test_a_contact_gets_one_message_per_recipient_min_gap_from_one_account(
    ctx: Context, tmp_path: Path
) -> None:
    policy = {"memory": "[account]\n[recipient]\nmin_gap_s = 30\n"}
    ctx.settings.rate_limits_dir = write_policies(tmp_path / "rl", policy)
    ids = add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 3)
    for name in ("c1", "c2"):  # two campaigns reach the same three contacts at once
        add_campaign(ctx, name, ["a1"])
        materialise(ctx, start(ctx, name, force=True).id)  # type: ignore[arg-type]
    run_lane(ctx, ids["a1"], slice_s=5)
    sent = sorted(message.to for _, message in HUB.by_key.values())
    assert sent == ["u000001", "u000002", "u000003"] and HUB.duplicates == 0
    with ctx.engine.connect() as conn:
        waiting = conn.execute(
            select(D.contact_id, D.not_before).where(D.state == "pending").order_by(D.contact_id)
        ).all()
    assert [contact for contact, _ in waiting] == [1, 2, 3], "each contact's second waits"
    assert all(29 < (at - utcnow()).total_seconds() <= 30 for _, at in waiting)
    gap = keys(ctx).recipient_gap(ids["a1"], 1)
    assert 29_000 < ctx.redis.pttl(gap) <= 30_000, "the gap runs from the end of the send"
    # Once the gap has passed, the second messages go.
    ctx.redis.delete(*[keys(ctx).recipient_gap(ids["a1"], c) for c in (1, 2, 3)])
    with ctx.engine.begin() as conn:
        conn.execute(update(tables.deliveries).values(not_before=None))
    run_lane(ctx, ids["a1"], slice_s=5)
    assert HUB.accepted == 6 and HUB.duplicates == 0


def test_the_recipient_gap_runs_from_the_end_of_a_slow_send(ctx: Context, tmp_path: Path) -> None:
    # A Telegram text in three parts takes over two seconds: the next message to that chat
    # must still wait the whole gap after the last part.
    policy = {"scripted": "[account]\n[recipient]\nmin_gap_s = 3\n"}
    ctx.settings.rate_limits_dir = write_policies(tmp_path / "rl", policy)
    ids = add_accounts(ctx.engine, ["a1"], channel="scripted")
    add_contacts(ctx.engine, 1, channel="scripted")
    add_campaign(ctx, "c1", ["a1"])
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]

    def slow(message: OutboundMessage) -> SendResult:
        time.sleep(1.5)
        return SendResult("m1")

    ScriptedChannel.scripts["a1"] = slow
    assert run_lane(ctx, ids["a1"], slice_s=5).sent == 1
    assert ctx.redis.pttl(keys(ctx).recipient_gap(ids["a1"], 1)) > 2_500


def test_at_the_end_time_unsent_deliveries_are_skipped_as_window_closed(ctx: Context) -> None:
    add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 5)
    add_campaign(ctx, "c1", ["a1"])
    run = start(ctx, "c1")
    materialise(ctx, run.id)  # type: ignore[arg-type]
    with ctx.engine.begin() as conn:
        conn.execute(update(tables.campaign_runs).values(end_at=utcnow() - timedelta(seconds=1)))
    assert close_windows(ctx) == [run.id]
    with ctx.engine.connect() as conn:
        reasons = set(conn.execute(select(D.state, D.reason)).all())
    assert reasons == {("skipped", "window_closed")}


def test_service_runs_are_claimed_before_marketing_runs(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, ["a1"], channel="scripted")
    add_contacts(ctx.engine, 10, channel="scripted")
    add_campaign(ctx, "promo", ["a1"])
    materialise(ctx, start(ctx, "promo").id)  # type: ignore[arg-type]
    add_campaign(ctx, "reply", ["a1"], kind="service")
    reply = start(ctx, "reply")
    materialise(ctx, reply.id)  # type: ignore[arg-type]
    order: list[str] = []
    ScriptedChannel.scripts["a1"] = lambda m: (order.append(m.idempotency_key), SendResult("x"))[1]
    ctx.settings.claim_batch = 5
    run_lane(ctx, ids["a1"], slice_s=5)
    assert [key.split("-")[2] for key in order[:10]] == [str(reply.id)] * 10
    assert len(order) == 20


def test_a_contact_at_exactly_its_weekly_cap_is_over_it(ctx: Context) -> None:
    """Two messages this week (three days ago, none today) with `per_week = 2`: over; with
    one: not. Rows in flight or ambiguous count too: they may have reached the person."""
    ids = add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 3)
    for name in ("c1", "c2"):
        add_campaign(ctx, name, ["a1"])
        materialise(ctx, start(ctx, name).id)  # type: ignore[arg-type]
    three_days_ago = utcnow() - timedelta(days=3)
    with ctx.engine.begin() as conn:
        conn.execute(
            update(tables.deliveries)
            .where(D.contact_id == 1)
            .values(state="sent", sent_at=three_days_ago)
        )
        conn.execute(
            update(tables.deliveries)
            .where(D.contact_id == 2, D.run_id == 1)
            .values(state="sent", sent_at=three_days_ago)
        )
        conn.execute(
            update(tables.deliveries)
            .where(D.contact_id == 3)
            .values(state="unknown", updated_at=three_days_ago)
        )
    guard = guard_for(ctx, RecipientLimits(per_week=2))
    assert guard.over_cap([1, 2, 3]) == [True, False, True]
    assert ids
