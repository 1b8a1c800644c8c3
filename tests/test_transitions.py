"""Campaign and run transitions under forced orderings: a tick between any two statements."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.support.rows import states
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns import lifecycle, transitions
from worker.campaigns.materialise import materialise
from worker.campaigns.status import campaign_status
from worker.campaigns.tick import tick
from worker.channels.memory import HUB
from worker.dispatch import runs
from worker.dispatch.lane import run_lane
from worker.errors import UserError
from worker.runtime import Context
from worker.store import tables
from worker.store.models import utcnow

D, R, C = tables.deliveries.c, tables.campaign_runs.c, tables.campaigns.c


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Context:
    HUB.clear()
    return make_context(db_url, redis_url, tmp_path, claim_batch=50)


def run_statuses(ctx: Context) -> list[str]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(R.status).order_by(R.id)).scalars())


def settle_everything(ctx: Context, account_ids: list[int]) -> None:
    """What the workers would do: materialise begun runs, run lanes, tick; until quiet."""
    for _ in range(30):
        tick(ctx, force=True)
        with ctx.engine.connect() as conn:
            begun = conn.execute(
                select(R.id).where(R.started_at.is_not(None), R.materialised.is_(False))
            ).scalars()
            for run_id in list(begun):
                materialise(ctx, run_id)
        results = [run_lane(ctx, a, slice_s=5) for a in account_ids]
        if not any(r.more for r in results) and "pending" not in states(ctx):
            tick(ctx, force=True)
            return
    raise AssertionError(f"did not settle: {states(ctx)}")


def a_tick_first(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the next `begin_run` find that a whole tick (and a materialisation, and a lane's
    completion check) ran just before it. Returns what the run looked like each time."""
    seen: list[str] = []
    real = transitions.begin_run

    def tick_then_begin(engine, run_id):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(transitions, "begin_run", real)  # the tick's own call is plain
        tick(ctx, force=True)
        materialise(ctx, run_id)
        runs.complete_finished_runs(engine)
        seen.extend(run_statuses(ctx))
        return real(engine, run_id)

    monkeypatch.setattr(transitions, "begin_run", tick_then_begin)
    return seen


def test_a_tick_between_start_and_the_snapshot_never_completes_the_run(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 40)
    add_campaign(ctx, "c1", ["a1"])
    seen = a_tick_first(ctx, monkeypatch)
    start(ctx, "c1")
    assert "completed" not in seen, seen
    settle_everything(ctx, list(ids.values()))
    assert states(ctx) == Counter({"sent": 40})
    assert len(HUB.by_key) == 40 and HUB.duplicates == 0
    doc = campaign_status(ctx.engine, "c1")
    assert doc["status"] == "completed" and doc["total"] == 40


def test_a_run_is_begun_once_however_many_processes_try(ctx: Context) -> None:
    add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 5)
    add_campaign(ctx, "c1", ["a1"])
    run_id = transitions.open_run(ctx.engine, "c1", None, None)
    assert transitions.begin_run(ctx.engine, run_id) is True
    assert transitions.begin_run(ctx.engine, run_id) is False
    with ctx.engine.connect() as conn:
        total, snapshot = conn.execute(
            select(R.expected_total, R.snapshot_max_contact_id).where(R.id == run_id)
        ).one()
    assert (total, snapshot) == (5, 5)


def test_a_paused_scheduled_campaign_resumed_after_its_start_sends_to_everyone(
    ctx: Context,
) -> None:
    ids = add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 30)
    later = (utcnow() + timedelta(hours=1)).isoformat()
    add_campaign(ctx, "c1", ["a1"], start=later, tz="UTC")
    assert start(ctx, "c1").status == "scheduled"
    lifecycle.pause_campaign(ctx.engine, "c1")
    past = utcnow() - timedelta(seconds=1)
    with ctx.engine.begin() as conn:  # the start time passes while it is paused
        conn.execute(update(tables.campaign_runs).values(start_at=past))
        conn.execute(update(tables.campaigns).values(start_at=past))
    assert lifecycle.resume_campaign(ctx, "c1") == "running"
    settle_everything(ctx, list(ids.values()))
    assert states(ctx) == Counter({"sent": 30})
    assert campaign_status(ctx.engine, "c1")["status"] == "completed"


def test_a_paused_running_campaign_resumes_running_without_a_new_snapshot(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 10)
    add_campaign(ctx, "c1", ["a1"])
    run = start(ctx, "c1")
    lifecycle.pause_campaign(ctx.engine, "c1")
    add_contacts(ctx.engine, 10, start=11)  # joined after the start: not in this run
    assert lifecycle.resume_campaign(ctx, "c1") == "running"
    settle_everything(ctx, list(ids.values()))
    assert states(ctx) == Counter({"sent": 10})
    assert run.id is not None


def test_materialisation_never_writes_into_a_run_that_is_over(ctx: Context) -> None:
    add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 10)
    add_campaign(ctx, "c1", ["a1"])
    run = start(ctx, "c1")
    with ctx.engine.begin() as conn:  # whatever made it so, the run is over
        conn.execute(update(tables.campaign_runs).values(status="completed"))
    materialise(ctx, run.id)  # type: ignore[arg-type]
    assert states(ctx) == Counter()


def test_cancel_during_materialisation_covers_every_member(ctx: Context) -> None:
    """The cancel lands between two chunks of a materialisation that is under way."""
    add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 300)
    add_campaign(ctx, "c1", ["a1"])
    run = start(ctx, "c1")
    ctx.settings.materialise_chunk = 100
    chunks: list[int] = []

    def cancel_after_first_chunk(_accounts: set[int]) -> None:
        chunks.append(len(chunks))
        if len(chunks) == 1:
            assert states(ctx) == Counter({"pending": 100})
            lifecycle.cancel_campaign(ctx, "c1")

    materialise(ctx, run.id, on_chunk=cancel_after_first_chunk)  # type: ignore[arg-type]
    assert len(chunks) == 3
    assert states(ctx) == Counter({"skipped": 300})
    doc = campaign_status(ctx.engine, "c1")
    assert doc["status"] == "cancelled" and doc["counts"]["skipped"] == 300


def test_transitions_refuse_states_they_do_not_expect(ctx: Context) -> None:
    add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 3)
    add_campaign(ctx, "c1", ["a1"])
    with pytest.raises(UserError, match="draft"):
        lifecycle.resume_campaign(ctx, "c1")
    start(ctx, "c1")
    with pytest.raises(UserError, match="draft"):
        start(ctx, "c1")
    lifecycle.cancel_campaign(ctx, "c1")
    with pytest.raises(UserError, match="cancelled"):
        lifecycle.pause_campaign(ctx.engine, "c1")
    assert run_statuses(ctx) == ["cancelled"]
