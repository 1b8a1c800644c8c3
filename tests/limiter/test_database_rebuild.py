"""The database side of a rebuild: `limiter_for` reads the sends Redis lost from deliveries.

Runs on SQLite and PostgreSQL (the `db_url` fixture) with real Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlmodel import Session

from tests.support.world import add_accounts, add_contacts, make_context, write_policies
from worker.dispatch import runs
from worker.dispatch.keys import keys
from worker.dispatch.pacers import limiter_for, sent_between, sent_on_day
from worker.limiter.localtime import LocalDay
from worker.runtime import Context
from worker.store import tables
from worker.store.models import Campaign, CampaignRun, Segment, utcnow

T = datetime(2026, 5, 28, 12, 0, 0)  # naive UTC, as the tables hold times
T_MS = 1_779_969_600_000  # the same instant in epoch ms


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    limits = write_policies(tmp_path / "limits", {"slow": "[account]\nper_minute = 3\n"})
    made = make_context(db_url, redis_url, tmp_path, rate_limits_dir=limits)
    yield made
    stale = list(made.redis.scan_iter("siyu:limiter:{siyu:*:limit:*"))
    if stale:
        made.redis.delete(*stale)
    made.engine.dispose()


def add_run(ctx: Context) -> int:
    with Session(ctx.engine) as session:
        segment = Segment(name="all", expression="tag = python")
        session.add(segment)
        session.flush()
        campaign = Campaign(name="c", segment_id=segment.id or 0, template="invite")
        session.add(campaign)
        session.flush()
        run = CampaignRun(campaign_id=campaign.id or 0)
        session.add(run)
        session.commit()
        return run.id or 0


def add_deliveries(ctx: Context, rows: list[tuple[int, str, datetime | None, datetime]]) -> None:
    """(account_id, state, sent_at, updated_at) per delivery, one contact each."""
    run_id = add_run(ctx)
    add_contacts(ctx.engine, len(rows))
    values = [
        {
            "run_id": run_id,
            "contact_id": i + 1,
            "account_id": account_id,
            "state": state,
            "sent_at": sent_at,
            "updated_at": updated_at,
            "created_at": updated_at,
        }
        for i, (account_id, state, sent_at, updated_at) in enumerate(rows)
    ]
    with ctx.engine.begin() as conn:
        conn.execute(insert(tables.deliveries), values)


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def test_recent_sends_are_the_newest_deliveries_that_may_have_gone_out(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, ["mine", "other"])
    mine, other = ids["mine"], ids["other"]
    add_deliveries(
        ctx,
        [
            (mine, "sent", at(-10), at(-10)),
            (mine, "sending", None, at(-5)),  # may have gone out: counts, when marked
            (mine, "unknown", None, at(-3)),
            (mine, "failed", None, at(-2)),
            (mine, "pending", None, at(-1)),
            (other, "sent", at(-4), at(-4)),
            (mine, "sent", at(-7200), at(-7200)),  # before the window
            (mine, "sent", at(60), at(60)),  # at its end: excluded
        ],
    )
    window = (T_MS - 60_000, T_MS + 60_000)
    assert sent_between(ctx, mine, *window, 10) == [T_MS - 3000, T_MS - 5000, T_MS - 10_000]
    assert sent_between(ctx, mine, *window, 2) == [T_MS - 3000, T_MS - 5000]
    day = LocalDay("2026-05-28", T_MS - 12 * 3_600_000, T_MS + 12 * 3_600_000)
    assert sent_on_day(ctx, mine, day) == 5  # sent, sending and unknown alike


def test_the_lane_limiter_keeps_a_per_minute_window_after_redis_lost_the_account(
    ctx: Context,
) -> None:
    account_id = add_accounts(ctx.engine, ["slow"], channel="sms")["slow"]
    with ctx.engine.begin() as conn:
        conn.execute(tables.accounts.update().values(policy="slow"))
    account = runs.load_account(ctx.engine, account_id)
    assert account is not None
    first = limiter_for(ctx, account).reserve(3)
    sent = [datetime.fromtimestamp(t, UTC).replace(tzinfo=None) for t in first]
    add_deliveries(ctx, [(account_id, "sent", s, utcnow()) for s in sent])
    lost = list(ctx.redis.scan_iter(f"siyu:limiter:{{{keys(ctx).limiter_account(account_id)}}}:*"))
    assert lost, "the account's limiter keys, as Redis would lose them"
    ctx.redis.delete(*lost)
    [after] = limiter_for(ctx, account).reserve(1)
    assert after >= first[0] + 60
