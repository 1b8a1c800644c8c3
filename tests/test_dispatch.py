"""The outbox and account lanes, driven in-process on SQLite and PostgreSQL with real Redis."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tests.support.fakes import ScriptedChannel, ScriptedLookupChannel, register_fakes
from tests.support.rows import drain, make_due, states
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns.assignment import HASH_MULTIPLIER, Sender, normalised
from worker.campaigns.lifecycle import cancel_campaign, pause_campaign, resume_campaign
from worker.campaigns.materialise import materialise
from worker.campaigns.status import campaign_status
from worker.campaigns.tick import tick
from worker.channels.base import SendResult
from worker.channels.errors import AccountBanned, RateLimited, Transient
from worker.channels.memory import HUB
from worker.dispatch import outbox
from worker.dispatch.compose import idempotency_key
from worker.dispatch.keys import keys
from worker.dispatch.lane import run_lane
from worker.dispatch.lease import Lease
from worker.dispatch.reconcile import reconcile
from worker.runtime import Context
from worker.store import tables
from worker.store.db import installation_id
from worker.store.models import Account, Delivery, Suppression

D = Delivery.__table__.c


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Context:
    HUB.clear()
    ScriptedChannel.reset()
    ScriptedLookupChannel.accepted.clear()
    register_fakes()
    return make_context(db_url, redis_url, tmp_path, claim_batch=50)


EXPIRED = -1.0  # a database lease that has already passed: a dead lane's rows


def key_of(ctx: Context, run_id: int, contact_id: int) -> str:
    return idempotency_key(installation_id(ctx.engine), run_id, contact_id)


def run_id_of(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.max(D.run_id))).scalar_one())


def started(
    ctx: Context, accounts: dict[str, int], n: int = 120, channel: str = "memory", **kw: object
) -> int:
    add_contacts(ctx.engine, n, channel=channel)
    add_campaign(ctx, "c1", list(accounts), **kw)  # type: ignore[arg-type]
    run = start(ctx, "c1")
    assert run.id is not None
    materialise(ctx, run.id)
    return run.id


def test_every_member_is_sent_exactly_once_and_the_campaign_completes(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1", "a2", "a3"])
    started(ctx, accounts)
    drain(ctx, list(accounts.values()))
    assert states(ctx) == Counter({"sent": 120})
    assert len(HUB.by_key) == 120 and HUB.duplicates == 0
    texts = [m.text for _, m in HUB.by_key.values()]
    assert all("Python 入门" in t and "https://g.example.com/1" in t for t in texts)
    assert all("utm_campaign=c1" in t and "rt=" in t for t in texts)
    doc = campaign_status(ctx.engine, "c1")
    assert doc["status"] == "completed"
    assert doc["counts"] == {"pending": 0, "sent": 120, "failed": 0, "skipped": 0, "unknown": 0}
    assert sum(a["sent"] for a in doc["accounts"].values()) == 120


def test_suppressed_and_unreachable_members_are_skipped_with_their_reason(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1", "a2"])
    outsider = add_accounts(ctx.engine, ["outsider"])["outsider"]
    add_contacts(ctx.engine, 10)
    add_contacts(ctx.engine, 1, start=11, owner_of={11: outsider})
    add_contacts(ctx.engine, 1, start=12, channel="mock")
    with ctx.engine.begin() as conn:
        conn.execute(Suppression.__table__.insert(), [{"contact_id": 1, "reason": "opted_out"}])
    add_campaign(ctx, "c1", ["a1", "a2"])
    run = start(ctx, "c1")
    materialise(ctx, run.id)  # type: ignore[arg-type]
    drain(ctx, [accounts["a1"], accounts["a2"]])
    with ctx.engine.connect() as conn:
        reasons = dict(
            conn.execute(select(D.contact_id, D.reason).where(D.state == "skipped")).all()
        )
    assert reasons == {1: "opted_out", 11: "owner_not_in_campaign", 12: "no_reachable_account"}
    assert states(ctx) == Counter({"sent": 9, "skipped": 3})
    assert campaign_status(ctx.engine, "c1")["total"] == 12


def test_an_owner_bound_contact_is_only_messaged_by_its_owner(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1", "a2"])
    add_contacts(ctx.engine, 20, owner_of={i: accounts["a2"] for i in range(1, 21)})
    add_campaign(ctx, "c1", ["a1", "a2"])
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
    with ctx.engine.connect() as conn:
        owners = set(conn.execute(select(D.account_id)).scalars())
    assert owners == {accounts["a2"]}


def pick(contact_id: int, candidates: list[int], weights: dict[int, int]) -> int:
    """The reference for `assignment.pooled_account`: a weighted hash of the contact id."""
    slot = (contact_id * HASH_MULTIPLIER) % sum(weights[c] for c in candidates)
    for candidate in candidates:
        slot -= weights[candidate]
        if slot < 0:
            return candidate
    raise AssertionError("unreachable: slot < total")


INT4_MAX = 2**31 - 1


def add_contacts_from(ctx: Context, first_id: int, count: int) -> list[int]:
    """Contacts with explicit ids, e.g. next to the 4-byte integer limit."""
    from worker.store.models import Contact, utcnow

    now, ids = utcnow(), list(range(first_id, first_id + count))
    rows = [
        {
            "id": i,
            "channel": "memory",
            "external_id": f"x{i}",
            "name": "n",
            "tags": ["python"],
            "attrs": {},
            "created_at": now,
            "updated_at": now,
        }
        for i in ids
    ]
    with ctx.engine.begin() as conn:
        conn.execute(Contact.__table__.insert(), rows)  # type: ignore[attr-defined]
    return ids


@pytest.mark.parametrize(
    ("scale", "first_id"), [(1, 1), (1_000_000, 1), (1_000_000, INT4_MAX - 699)]
)
def test_the_database_spreads_free_contacts_by_capacity_like_pick(
    ctx: Context, scale: int, first_id: int
) -> None:
    """Materialisation assigns in SQL; it must agree with `pick`, contact by contact, with
    small weights and with capacities large enough to be scaled down (products near 10^12,
    which overflow a 4-byte integer on PostgreSQL), with contact ids up to the largest
    INTEGER; paused senders take nothing."""
    from worker.campaigns.materialise import _Plan, _write_chunk

    ids = add_accounts(ctx.engine, ["big", "mid", "tiny", "paused"])
    contact_ids = add_contacts_from(ctx, first_id, 700)
    add_campaign(ctx, "c1", list(ids))
    run = start(ctx, "c1")
    weights = {ids["big"]: 9 * scale, ids["mid"]: 2 * scale, ids["tiny"]: 1, ids["paused"]: 10}
    senders = tuple(Sender(i, "memory", name != "paused") for name, i in ids.items())
    plan = _Plan(run.id, "tag = python", senders, contact_ids[-1], weights)  # type: ignore[arg-type]
    upto: int | None = 0
    while upto is not None:
        upto, _ = _write_chunk(ctx.engine, plan, upto, 64)
    with ctx.engine.connect() as conn:
        got = dict(conn.execute(select(D.contact_id, D.account_id)).all())
    active = [ids["big"], ids["mid"], ids["tiny"]]
    scaled = normalised(weights)
    assert got == {c: pick(c, active, scaled) for c in contact_ids}
    shares = Counter(got.values())
    assert ids["paused"] not in shares and shares[ids["big"]] > 3 * shares[ids["mid"]] > 0
    if first_id == 1:
        assert (shares[ids["tiny"]] > 0) is (scale == 1)


def test_only_one_lane_per_account_runs_at_a_time(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1"])
    started(ctx, accounts, n=10)
    other = Lease(ctx.redis, keys(ctx).lane(accounts["a1"]), 5000)
    assert other.acquire()
    assert run_lane(ctx, accounts["a1"]).acquired is False
    assert states(ctx) == Counter({"pending": 10})
    other.release()
    assert run_lane(ctx, accounts["a1"]).acquired is True


def test_claimed_rows_of_a_dead_lane_go_back_to_pending(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1"])
    run_id = started(ctx, accounts, n=10)
    claimed = outbox.claim(ctx.engine, accounts["a1"], [run_id], 4, "dead-lane", EXPIRED)
    assert len(claimed) == 4
    reconcile(ctx)
    assert states(ctx) == Counter({"pending": 10})


def test_a_live_lanes_rows_are_left_alone_by_the_reconciler_even_past_their_lease(
    ctx: Context,
) -> None:
    """The lane still holds its Redis lease: its rows are its own, whatever their lease says."""
    accounts = add_accounts(ctx.engine, ["a1"])
    run_id = started(ctx, accounts, n=10)
    lease = Lease(ctx.redis, keys(ctx).lane(accounts["a1"]), 5000)
    assert lease.acquire()
    claimed = outbox.claim(ctx.engine, accounts["a1"], [run_id], 4, lease.token, EXPIRED)
    outbox.mark_sending(ctx.engine, [c.id for c in claimed[:2]], lease.token)
    reconcile(ctx)
    assert states(ctx) == Counter({"pending": 6, "claimed": 2, "sending": 2})


def test_rows_within_their_lease_wait_even_when_their_lane_lost_redis(ctx: Context) -> None:
    """Redis lost the lane's lease (a restart): the lane may still be finishing a send, so
    its rows are taken over only once their database lease has passed too."""
    accounts = add_accounts(ctx.engine, ["a1"])
    run_id = started(ctx, accounts, n=10)
    claimed = outbox.claim(ctx.engine, accounts["a1"], [run_id], 4, "gone-from-redis", 60)
    outbox.mark_sending(ctx.engine, [c.id for c in claimed[:2]], "gone-from-redis")
    reconcile(ctx)
    assert states(ctx) == Counter({"pending": 6, "claimed": 2, "sending": 2})


def test_ambiguous_sends_are_settled_by_lookup_and_never_sent_twice(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1"], channel="scripted_lookup")
    run_id = started(ctx, accounts, n=4, channel="scripted_lookup")
    claimed = outbox.claim(ctx.engine, accounts["a1"], [run_id], 4, "dead", EXPIRED)
    outbox.mark_sending(ctx.engine, [c.id for c in claimed], "dead")
    ScriptedLookupChannel.accepted[key_of(ctx, run_id, claimed[0].contact_id)] = "m-1"
    reconcile(ctx)
    assert states(ctx) == Counter({"sent": 1, "pending": 3})
    ScriptedChannel.scripts["a1"] = lambda m: SendResult("m-" + m.idempotency_key)
    assert run_lane(ctx, accounts["a1"], slice_s=5).sent == 0, "not before their backoff"
    make_due(ctx)
    drain(ctx, [accounts["a1"]])
    assert states(ctx) == Counter({"sent": 4})
    sent_keys = [m.idempotency_key for _, m in ScriptedChannel.attempts]
    assert key_of(ctx, run_id, claimed[0].contact_id) not in sent_keys
    assert len(sent_keys) == 3


def test_ambiguous_sends_without_lookup_become_unknown_and_are_not_resent(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1"], channel="scripted")
    run_id = started(ctx, accounts, n=3, channel="scripted")
    claimed = outbox.claim(ctx.engine, accounts["a1"], [run_id], 2, "dead", EXPIRED)
    outbox.mark_sending(ctx.engine, [c.id for c in claimed], "dead")
    reconcile(ctx)
    ScriptedChannel.scripts["a1"] = lambda m: SendResult("ok")
    drain(ctx, [accounts["a1"]])
    assert states(ctx) == Counter({"sent": 1, "unknown": 2})
    assert len(ScriptedChannel.attempts) == 1


def test_transient_errors_are_retried_and_then_succeed(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1"], channel="scripted")
    started(ctx, accounts, n=2, channel="scripted")
    calls = Counter[str]()

    def flaky(m):  # type: ignore[no-untyped-def]
        calls[m.idempotency_key] += 1
        if calls[m.idempotency_key] < 3:
            raise Transient("503")
        return SendResult("ok")

    ScriptedChannel.scripts["a1"] = flaky
    drain(ctx, [accounts["a1"]])
    assert states(ctx) == Counter({"sent": 2})
    assert set(calls.values()) == {3}


def test_a_rate_limited_account_cools_down_and_loses_nothing(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1"], channel="scripted")
    started(ctx, accounts, n=5, channel="scripted")
    ScriptedChannel.scripts["a1"] = lambda m: (_ for _ in ()).throw(RateLimited(retry_after_s=30))
    result = run_lane(ctx, accounts["a1"], slice_s=5)
    assert result.stop_reason == "rate_limited" and result.more
    assert states(ctx) == Counter({"pending": 5})
    with ctx.engine.connect() as conn:
        state = conn.execute(select(Account.state).where(Account.id == accounts["a1"])).scalar()
    assert state == "cooldown"
    ScriptedChannel.scripts["a1"] = lambda m: SendResult("ok")  # would succeed now
    attempts = len(ScriptedChannel.attempts)
    assert run_lane(ctx, accounts["a1"], slice_s=5).sent == 0
    assert len(ScriptedChannel.attempts) == attempts, "a cooling account makes no attempt"
    with ctx.engine.begin() as conn:  # the cooldown ends
        conn.execute(update(tables.accounts).values(cooldown_until=None))
    assert run_lane(ctx, accounts["a1"], slice_s=5).sent == 5


def test_a_banned_account_stops_and_its_rows_wait(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1"], channel="scripted")
    started(ctx, accounts, n=5, channel="scripted")
    ScriptedChannel.scripts["a1"] = lambda m: (_ for _ in ()).throw(AccountBanned("banned"))
    result = run_lane(ctx, accounts["a1"], slice_s=5)
    assert result.stop_reason == "account_banned" and not result.more
    assert states(ctx) == Counter({"pending": 5})
    assert len(ScriptedChannel.attempts) == 1


def test_pause_stops_claims_and_resume_never_resends(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1"])
    started(ctx, accounts, n=100)
    claimed = outbox.claim(ctx.engine, accounts["a1"], [run_id_of(ctx)], 30, "x", 60)
    outbox.settle(ctx.engine, [outbox.Outcome(c.id, "sent", message_id="m") for c in claimed], "x")  # type: ignore[arg-type]
    pause_campaign(ctx.engine, "c1")
    assert run_lane(ctx, accounts["a1"]).sent == 0
    resume_campaign(ctx, "c1")
    drain(ctx, [accounts["a1"]])
    assert states(ctx) == Counter({"sent": 100})
    assert len(HUB.by_key) == 70  # the 30 settled before the pause were not sent again


def test_cancel_skips_the_rest_with_reason_cancelled(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1"])
    run_id = started(ctx, accounts, n=50)
    outbox.claim(ctx.engine, accounts["a1"], [run_id], 10, "lane", 60)
    cancel_campaign(ctx, "c1")
    assert run_lane(ctx, accounts["a1"]).sent == 0
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(D.state, D.reason).distinct()).all()
    assert rows == [("skipped", "cancelled")]
    assert campaign_status(ctx.engine, "c1")["status"] == "cancelled"


def test_the_tick_finishes_a_run_and_requeues_dead_claims(ctx: Context) -> None:
    accounts = add_accounts(ctx.engine, ["a1"])
    run_id = started(ctx, accounts, n=10)
    outbox.claim(ctx.engine, accounts["a1"], [run_id], 10, "dead", EXPIRED)
    report = tick(ctx, force=True)
    assert report.lanes_kicked == [accounts["a1"]]
    assert states(ctx) == Counter({"pending": 10})
    drain(ctx, [accounts["a1"]])
    assert campaign_status(ctx.engine, "c1")["status"] == "completed"
