"""Cron campaigns, with the beat's clock passed in: due times in the campaign's zone, one run
per due time however the beats interleave, skips recorded (grace, pause), evergreen runs.

The clock is virtual and set in the future (tomorrow's due time onwards), so the runs it
opens have windows that are still open for the lanes that drain them here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from tests.support.cli import Siyu, one_error_line, siyu_on
from tests.support.rows import drain
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context
from worker.campaigns import lifecycle, recurring
from worker.campaigns.materialise import materialise
from worker.campaigns.overview import show_campaign
from worker.campaigns.status import campaign_status
from worker.errors import UserError
from worker.runtime import Context
from worker.store import tables
from worker.store.models import utcnow

CRON, TZ = "0 10 * * *", "Asia/Shanghai"  # 10:00 every day; Shanghai has no DST
GRACE_S = 60.0
C, R, D, F = (
    tables.campaigns.c,
    tables.campaign_runs.c,
    tables.deliveries.c,
    tables.campaign_firings.c,
)


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    """Account a1 (memory), contacts u000001..u000003, cron campaign `daily` armed."""
    ctx = make_context(db_url, redis_url, tmp_path, beat_grace_s=GRACE_S)
    add_accounts(ctx.engine, ["a1"])
    add_contacts(ctx.engine, 3)
    add_campaign(ctx, "daily", ["a1"], cron=CRON, tz=TZ, start="2026-01-01T00:00+08:00")
    assert lifecycle.start_campaign(ctx, "daily").status == "scheduled"
    yield ctx
    ctx.engine.dispose()


def due(n: int) -> datetime:
    """The n-th due time from tomorrow's 10:00 Shanghai (naive UTC)."""
    first = recurring.next_due(CRON, TZ, utcnow() + timedelta(days=1))
    return first + timedelta(days=n)


def firings(ctx: Context) -> list[tuple[datetime, str, str | None, bool]]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(F.due_at, F.status, F.reason, F.run_id).order_by(F.due_at))
        return [(r[0], r[1], r[2], r[3] is not None) for r in rows]


def run_ids(ctx: Context) -> list[int]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(R.id).order_by(R.id)).scalars())


def status(ctx: Context) -> str:
    with ctx.engine.connect() as conn:
        return str(conn.execute(select(C.status).where(C.name == "daily")).scalar_one())


def armed(ctx: Context) -> recurring.Armed:
    (campaign,) = recurring.armed_campaigns(ctx.engine)
    return campaign


def fire_and_send(ctx: Context, now: datetime) -> int:
    """One beat look at `now` that must fire; the run is materialised and its lanes drained."""
    (firing,) = recurring.beat_once(ctx, now)
    assert firing.status == "fired" and firing.run_id is not None, firing
    materialise(ctx, firing.run_id)
    drain(ctx, [1])
    return firing.run_id


def sent_to(ctx: Context, run_id: int) -> list[int]:
    stmt = select(D.contact_id).where(D.run_id == run_id, D.state == "sent").order_by(D.contact_id)
    with ctx.engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


# --- due times -------------------------------------------------------------------------------


def test_due_times_are_read_in_the_campaigns_zone() -> None:
    # 10:00 in Shanghai (UTC+8, no DST) is 02:00 UTC, all year round.
    assert recurring.next_due(CRON, TZ, datetime(2026, 12, 6, 1, 0)) == datetime(2026, 12, 6, 2)
    assert recurring.next_due(CRON, TZ, datetime(2026, 12, 6, 2, 0)) == datetime(2026, 12, 7, 2)
    assert recurring.next_due(CRON, TZ, datetime(2026, 6, 6, 3, 0)) == datetime(2026, 6, 7, 2)
    assert recurring.latest_due(CRON, TZ, datetime(2026, 12, 6, 2, 0)) == datetime(2026, 12, 6, 2)
    assert recurring.latest_due(CRON, TZ, datetime(2026, 12, 6, 1, 59)) == datetime(2026, 12, 5, 2)


def test_a_zone_with_summer_time_keeps_the_local_hour() -> None:
    ny = "America/New_York"  # 10:00 is 15:00 UTC in winter, 14:00 UTC in summer
    assert recurring.next_due(CRON, ny, datetime(2026, 1, 10)) == datetime(2026, 1, 10, 15)
    assert recurring.next_due(CRON, ny, datetime(2026, 7, 10)) == datetime(2026, 7, 10, 14)


def test_a_sixth_field_is_seconds() -> None:
    every_10s = "* * * * * */10"
    assert recurring.next_due(every_10s, TZ, datetime(2026, 12, 6, 2, 0, 3)) == datetime(
        2026, 12, 6, 2, 0, 10
    )


@pytest.mark.parametrize("expression", ["", "0 10 * *", "61 10 * * *", "every day"])
def test_a_malformed_cron_is_refused_naming_the_option(expression: str) -> None:
    with pytest.raises(UserError, match=r"--cron: .* is not a cron expression"):
        recurring.check_cron(expression)


# --- one run per due time --------------------------------------------------------------------


def test_two_beats_racing_for_one_due_time_fire_it_once(ctx: Context) -> None:
    now = due(0) + timedelta(seconds=2)
    first, second = armed(ctx), armed(ctx)
    assert first.due(now) == second.due(now) == due(0)  # both saw it due

    won = recurring.claim(ctx.engine, first, due(0), now, GRACE_S)
    assert won.status == "fired" and won.run_id is not None
    materialise(ctx, won.run_id)  # nothing else stands in the second beat's way
    lost = recurring.claim(ctx.engine, second, due(0), now, GRACE_S)

    assert lost.status == "taken" and lost.run_id is None
    assert firings(ctx) == [(due(0), "fired", None, True)]
    assert run_ids(ctx) == [won.run_id]


def test_the_database_refuses_a_second_row_for_one_due_time(ctx: Context) -> None:
    row = {
        "campaign_id": armed(ctx).id,
        "due_at": due(0),
        "status": "fired",
        "created_at": utcnow(),
    }
    with ctx.engine.begin() as conn:
        conn.execute(insert(tables.campaign_firings).values(**row))
    with pytest.raises(IntegrityError), ctx.engine.begin() as conn:
        conn.execute(insert(tables.campaign_firings).values(**row))


def test_a_second_look_at_the_same_due_time_does_nothing(ctx: Context) -> None:
    now = due(0) + timedelta(seconds=1)
    assert [f.status for f in recurring.beat_once(ctx, now)] == ["fired"]
    assert recurring.beat_once(ctx, now + timedelta(seconds=5)) == []
    assert len(run_ids(ctx)) == 1
    assert status(ctx) == "running"


def test_a_run_opens_begun_with_its_window_up_to_the_next_due_time(ctx: Context) -> None:
    recurring.beat_once(ctx, due(0) + timedelta(seconds=1))
    with ctx.engine.connect() as conn:
        row = conn.execute(select(R.status, R.start_at, R.end_at, R.expected_total)).one()
    assert tuple(row) == ("running", due(0), due(1), 3)


# --- skips -----------------------------------------------------------------------------------


def test_a_due_time_found_after_the_grace_is_skipped_and_recorded(ctx: Context) -> None:
    late = recurring.beat_once(ctx, due(0) + timedelta(seconds=GRACE_S + 1))

    assert [(f.status, f.reason) for f in late] == [("skipped", "overdue")]
    assert firings(ctx) == [(due(0), "skipped", "overdue", False)]
    assert run_ids(ctx) == []


def test_a_due_time_found_within_the_grace_fires(ctx: Context) -> None:
    assert [f.status for f in recurring.beat_once(ctx, due(0) + timedelta(seconds=GRACE_S))] == [
        "fired"
    ]


def test_after_downtime_only_the_latest_due_time_is_decided(ctx: Context) -> None:
    recurring.beat_once(ctx, due(3) + timedelta(seconds=5))  # beat was down for three days

    assert firings(ctx) == [(due(3), "fired", None, True)]


def test_nothing_is_due_before_the_schedule_begins(ctx: Context) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(update(tables.campaigns).values(start_at=due(0) + timedelta(seconds=1)))
    assert recurring.beat_once(ctx, due(0) + timedelta(seconds=2)) == []
    assert firings(ctx) == []


def test_a_paused_campaign_skips_its_due_times_and_resume_fires_the_next(ctx: Context) -> None:
    fire_and_send(ctx, due(0) + timedelta(seconds=1))
    lifecycle.pause_campaign(ctx.engine, "daily")

    recurring.beat_once(ctx, due(1) + timedelta(seconds=1))
    assert firings(ctx)[-1] == (due(1), "skipped", "paused", False)
    lifecycle.resume_campaign(ctx, "daily")
    recurring.beat_once(ctx, due(1) + timedelta(seconds=2))  # decided already: stays skipped
    add_contacts(ctx.engine, 1, start=4)
    recurring.beat_once(ctx, due(2) + timedelta(seconds=1))

    assert [f[1:] for f in firings(ctx)] == [
        ("fired", None, True),
        ("skipped", "paused", False),
        ("fired", None, True),
    ]
    assert status(ctx) == "running"


def test_a_cancelled_campaign_fires_nothing_again(ctx: Context) -> None:
    fire_and_send(ctx, due(0) + timedelta(seconds=1))
    lifecycle.cancel_campaign(ctx, "daily")

    assert recurring.beat_once(ctx, due(1) + timedelta(seconds=1)) == []
    assert len(firings(ctx)) == 1
    assert status(ctx) == "cancelled"


def test_a_due_time_waits_for_the_previous_run_to_write_its_audience(ctx: Context) -> None:
    (first,) = recurring.beat_once(ctx, due(0) + timedelta(seconds=1))  # not materialised
    assert [f.status for f in recurring.beat_once(ctx, due(1) + timedelta(seconds=1))] == [
        "waiting"
    ]
    assert len(firings(ctx)) == 1  # nothing recorded yet: the next look tries again
    late = recurring.beat_once(ctx, due(1) + timedelta(seconds=GRACE_S + 1))

    assert [(f.status, f.reason) for f in late] == [("skipped", "previous_run_unfinished")]
    assert first.run_id is not None
    materialise(ctx, first.run_id)
    assert [f.status for f in recurring.beat_once(ctx, due(2) + timedelta(seconds=1))] == ["fired"]


def test_the_schedule_ends_at_its_end_time_and_the_campaign_completes(ctx: Context) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(update(tables.campaigns).values(end_at=due(0) + timedelta(hours=1)))
    run_id = fire_and_send(ctx, due(0) + timedelta(seconds=1))
    with ctx.engine.begin() as conn:  # the tick completes a drained run
        conn.execute(update(tables.campaign_runs).values(status="completed"))

    assert recurring.beat_once(ctx, due(1) + timedelta(seconds=1)) == []
    assert status(ctx) == "completed"
    assert sent_to(ctx, run_id) == [1, 2, 3]


# --- evergreen -------------------------------------------------------------------------------


def test_each_run_messages_only_members_the_campaign_has_not_messaged(ctx: Context) -> None:
    first = fire_and_send(ctx, due(0) + timedelta(seconds=1))
    add_contacts(ctx.engine, 2, start=4)
    second = fire_and_send(ctx, due(1) + timedelta(seconds=1))
    third = fire_and_send(ctx, due(2) + timedelta(seconds=1))

    assert sent_to(ctx, first) == [1, 2, 3]
    assert sent_to(ctx, second) == [4, 5]
    assert sent_to(ctx, third) == []
    with ctx.engine.connect() as conn:
        totals = dict(conn.execute(select(R.id, R.expected_total)).all())
    assert totals == {first: 3, second: 2, third: 0}


def test_status_counts_only_the_new_members_before_the_run_has_written_them(
    ctx: Context,
) -> None:
    fire_and_send(ctx, due(0) + timedelta(seconds=1))
    add_contacts(ctx.engine, 2, start=4)
    recurring.beat_once(ctx, due(1) + timedelta(seconds=1))  # not materialised yet

    doc = campaign_status(ctx.engine, "daily")

    assert (doc["total"], doc["counts"]["pending"], doc["counts"]["sent"]) == (2, 2, 0)


def test_a_member_whose_window_closed_is_tried_again_by_the_next_run(ctx: Context) -> None:
    (firing,) = recurring.beat_once(ctx, due(0) + timedelta(seconds=1))
    assert firing.run_id is not None
    materialise(ctx, firing.run_id)
    with ctx.engine.begin() as conn:  # time ran out for u000002; u000003 opted out
        conn.execute(
            update(tables.deliveries)
            .where(D.contact_id == 2)
            .values(state="skipped", reason="window_closed")
        )
        conn.execute(
            update(tables.deliveries)
            .where(D.contact_id == 3)
            .values(state="skipped", reason="opted_out")
        )
    drain(ctx, [1])

    second = fire_and_send(ctx, due(1) + timedelta(seconds=1))

    assert sent_to(ctx, second) == [2]


# --- show ------------------------------------------------------------------------------------


def test_show_lists_each_due_time_and_the_next_in_the_campaigns_zone(ctx: Context) -> None:
    fire_and_send(ctx, due(0) + timedelta(seconds=1))
    recurring.beat_once(ctx, due(1) + timedelta(seconds=GRACE_S + 5))

    doc = show_campaign(ctx.engine, "daily")

    assert doc["cron"] == CRON
    assert doc["next_due"].endswith("T10:00:00+08:00")
    assert [(f["due"][11:], f["status"], f["reason"]) for f in doc["firings"]] == [
        ("10:00:00+08:00", "fired", None),
        ("10:00:00+08:00", "skipped", "overdue"),
    ]
    assert doc["firings"][0]["counts"]["sent"] == 3 and doc["firings"][0]["total"] == 3


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def siyu(
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Siyu]:
    """`siyu` on a database with account a1 (memory), contacts and segment `py`."""
    ctx = make_context(db_url, redis_url, tmp_path)
    monkeypatch.setenv("SIYU_TEMPLATES_DIR", str(tmp_path / "templates"))
    monkeypatch.setenv("SIYU_REDIS_URL", redis_url)
    with siyu_on(db_url, monkeypatch, capsys) as run:
        add_accounts(ctx.engine, ["a1"])
        add_contacts(ctx.engine, 2)
        assert run("segments", "add", "py", "--where", "tag = python").code == 0
        yield run
    ctx.engine.dispose()


CREATE = ("campaigns", "create", "daily", "--segment", "py", "--template", "invite")


def test_a_cron_campaign_is_created_armed_edited_and_shown(siyu: Siyu) -> None:
    created = siyu(*CREATE, "--accounts", "a1", "--var", "course_name=x", "--var",
                   "course_url=https://e.example.com", "--var", "group_url=https://g.example.com",
                   "--cron", "0 10 * * *", "--tz", "Asia/Shanghai")  # fmt: skip
    assert created.code == 0, created
    assert siyu("campaigns", "start", "daily").stdout.strip() == "campaign daily is scheduled"
    edited = siyu("campaigns", "edit", "daily", "--cron", "30 9 * * 1-5")
    assert edited.code == 0, edited

    shown = siyu("campaigns", "show", "daily")
    doc = json.loads(siyu("campaigns", "show", "daily", "--json").stdout)

    assert "cron: 30 9 * * 1-5" in shown.stdout and "runs: none yet" in shown.stdout
    assert (doc["status"], doc["cron"], doc["firings"]) == ("scheduled", "30 9 * * 1-5", [])
    assert doc["next_due"].endswith("T09:30:00+08:00")
    assert f"next due: {doc['next_due'][:10]} 09:30:00 +08:00" in shown.stdout


def test_a_scheduled_one_off_campaign_cannot_be_made_recurring(siyu: Siyu) -> None:
    siyu(*CREATE, "--accounts", "a1", "--var", "course_name=x", "--var",
         "course_url=https://e.example.com", "--var", "group_url=https://g.example.com",
         "--start", "2030-03-01T09:00+08:00")  # fmt: skip
    assert siyu("campaigns", "start", "daily").code == 0

    line = one_error_line(siyu("campaigns", "edit", "daily", "--cron", "0 10 * * *"))

    assert "--cron cannot make it recurring now" in line
