"""Cron campaigns: when each is due, and exactly one run per due time however many beats run.

Each poll `siyu beat` looks, for every armed cron campaign, at its most recent due time only:
after downtime the older ones are neither fired nor recorded (no week of firings replayed).
A due time is decided once, by inserting its `campaign_firings` row: the unique (campaign,
due time) pair is the claim, and a fired run is opened in that same transaction, under the
campaign row's lock (the order every transition takes, `campaigns.transitions`), so a crash
leaves both or neither and a second beat finds the due time taken. It is skipped, and the
skip recorded, when the campaign is paused or when it is found more than the grace after it
passed; never fired late. A run opens already begun (audience snapshot taken) with the window
from its due time to the next one, and writes only members the campaign has not messaged
(`campaigns.evergreen`). Times are naive UTC; the schedule is read in the campaign's zone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter
from sqlalchemy import Connection, Engine, exists, insert, select, update

from worker.campaigns import transitions
from worker.campaigns.evergreen import not_messaged
from worker.campaigns.timeparse import zone
from worker.dispatch.keys import keys
from worker.errors import UserError
from worker.runtime import Context, enqueue
from worker.store import tables
from worker.store.db import dialect_insert
from worker.store.models import CampaignStatus, FiringStatus

log = logging.getLogger(__name__)
C = tables.campaigns.c
R = tables.campaign_runs.c
F = tables.campaign_firings.c
S = tables.segments.c
ARMED = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
LIVE_RUN = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
WAIT = "wait"  # the previous run is still writing its audience: look again next poll


def check_cron(expression: str) -> str:
    """A cron expression croniter reads (5 fields, or 6 with seconds last), stripped."""
    text = " ".join(expression.split())
    if not text or not croniter.is_valid(text):
        raise UserError(
            f"--cron: {expression!r} is not a cron expression (minute hour day month weekday, "
            "e.g. '0 10 * * *' for 10:00 every day; a 6th field is seconds)"
        )
    return text


def _local(when: datetime, tz: str) -> datetime:
    return when.replace(tzinfo=UTC).astimezone(zone(tz))


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None)


def latest_due(cron: str, tz: str, now: datetime) -> datetime:
    """The most recent due time at or before `now` (naive UTC in and out)."""
    after = _local(now.replace(microsecond=0) + timedelta(seconds=1), tz)
    return _utc(croniter(cron, after).get_prev(datetime))


def next_due(cron: str, tz: str, after: datetime) -> datetime:
    """The first due time strictly after `after` (naive UTC in and out)."""
    return _utc(croniter(cron, _local(after, tz)).get_next(datetime))


@dataclass(frozen=True, slots=True)
class Armed:
    """A cron campaign whose schedule is live (or paused): what beat needs to decide."""

    id: int
    name: str
    cron: str
    tz: str
    status: str
    start_at: datetime | None
    end_at: datetime | None

    def due(self, now: datetime) -> datetime | None:
        """The due time to decide now: the latest one inside the schedule, else None."""
        due = latest_due(self.cron, self.tz, now)
        if self.start_at is not None and due < self.start_at:
            return None
        if self.end_at is not None and due > self.end_at:
            return None
        return due

    def upcoming(self, now: datetime) -> datetime | None:
        """The next due time after `now` inside the schedule, None when it has ended."""
        if self.status not in ARMED:
            return None
        after = now if self.start_at is None else max(now, self.start_at - timedelta(seconds=1))
        due = next_due(self.cron, self.tz, after)
        return None if self.end_at is not None and due > self.end_at else due


def armed_campaigns(engine: Engine) -> list[Armed]:
    stmt = select(C.id, C.name, C.cron, C.tz, C.status, C.start_at, C.end_at).where(
        C.cron.is_not(None), C.status.in_(ARMED)
    )
    with engine.connect() as conn:
        return [Armed(*row) for row in conn.execute(stmt.order_by(C.id))]


@dataclass(frozen=True, slots=True)
class Firing:
    """What one beat did with one due time: fired (run_id), skipped (reason), or nothing."""

    campaign: str
    due_at: datetime
    status: str  # fired | skipped | taken (another beat decided it) | waiting | gone
    reason: str | None = None
    run_id: int | None = None


def _skip_reason(found: transitions.Locked, late_s: float, grace_s: float) -> str | None:
    """Why this due time is not fired (None: fire it), or WAIT."""
    if found.status == CampaignStatus.PAUSED:
        return "paused"
    run = found.run
    if run is not None and run.status in LIVE_RUN and not run.materialised:
        return "previous_run_unfinished" if late_s > grace_s else WAIT
    return "overdue" if late_s > grace_s else None


def claim(engine: Engine, campaign: Armed, due: datetime, now: datetime, grace_s: float) -> Firing:
    """Decide `due` for `campaign` once: insert its firing row and, if fired, open its run.

    The insert does nothing when another beat already inserted the row (`taken`): the
    unique constraint, not the lock, is what makes a due time fire once.
    """
    with transitions.locked(engine, name=campaign.name) as found:
        if found.status not in ARMED:
            return Firing(campaign.name, due, "gone")
        reason = _skip_reason(found, (now - due).total_seconds(), grace_s)
        if reason == WAIT:
            return Firing(campaign.name, due, "waiting")
        status = FiringStatus.SKIPPED if reason else FiringStatus.FIRED
        firing_id = _insert_firing(found.conn, found.campaign_id, due, status, reason, now)
        if firing_id is None:
            return Firing(campaign.name, due, "taken")
        if reason:
            return Firing(campaign.name, due, status, reason)
        run_id = _open_run(found.conn, campaign, found.campaign_id, due, now)
        found.conn.execute(
            update(tables.campaign_firings).where(F.id == firing_id).values(run_id=run_id)
        )
        found.conn.execute(
            update(tables.campaigns)
            .where(C.id == found.campaign_id, C.status == CampaignStatus.SCHEDULED)
            .values(status=CampaignStatus.RUNNING)
        )
    return Firing(campaign.name, due, status, run_id=run_id)


def _insert_firing(
    conn: Connection,
    campaign_id: int,
    due: datetime,
    status: str,
    reason: str | None,
    now: datetime,
) -> int | None:
    """The firing row's id, or None when (campaign, due time) is already taken."""
    stmt = (
        dialect_insert(conn)(tables.campaign_firings)
        .values(campaign_id=campaign_id, due_at=due, status=status, reason=reason, created_at=now)
        .on_conflict_do_nothing(index_elements=["campaign_id", "due_at"])
        .returning(F.id)
    )
    found = conn.execute(stmt).scalar()
    return None if found is None else int(found)


def _open_run(
    conn: Connection, campaign: Armed, campaign_id: int, due: datetime, now: datetime
) -> int:
    """A run begun at once: its window ends at the next due time (or the schedule's end)."""
    end = next_due(campaign.cron, campaign.tz, due)
    if campaign.end_at is not None:
        end = min(end, campaign.end_at)
    snapshot = transitions.max_contact_id(conn)
    run_id = int(
        conn.execute(
            insert(tables.campaign_runs)
            .values(
                campaign_id=campaign_id,
                status=CampaignStatus.RUNNING,
                start_at=due,
                end_at=end,
                snapshot_max_contact_id=snapshot,
                materialised_upto=0,
                materialised=False,
                expected_total=0,
                started_at=now,
                created_at=now,
            )
            .returning(R.id)
        ).scalar_one()
    )
    expression = conn.execute(
        select(S.expression).join(tables.campaigns, C.segment_id == S.id).where(C.id == campaign_id)
    ).scalar_one()
    total = transitions.count_members(conn, expression, snapshot, not_messaged(campaign_id, run_id))
    conn.execute(update(tables.campaign_runs).where(R.id == run_id).values(expected_total=total))
    return run_id


def finish_schedules(engine: Engine, now: datetime) -> list[str]:
    """Complete cron campaigns whose --end has passed once no run of theirs is live."""
    live_run = exists().where(R.campaign_id == C.id, R.status.in_(LIVE_RUN))
    over = (
        C.cron.is_not(None),
        C.status.in_([CampaignStatus.SCHEDULED, CampaignStatus.RUNNING]),
        C.end_at <= now,
        ~live_run,
    )
    with engine.connect() as conn:
        names = list(conn.execute(select(C.name).where(*over)).scalars())
    done = []
    for name in names:
        with transitions.locked(engine, name=name) as found:
            changed = found.conn.execute(
                update(tables.campaigns)
                .where(C.id == found.campaign_id, *over)
                .values(status=CampaignStatus.COMPLETED)
            ).rowcount
        if changed:
            done.append(name)
    return done


def _decided(engine: Engine, campaign_id: int, due: datetime) -> bool:
    stmt = select(F.id).where(F.campaign_id == campaign_id, F.due_at == due)
    with engine.connect() as conn:
        return conn.execute(stmt).first() is not None


def beat_once(ctx: Context, now: datetime) -> list[Firing]:
    """One look at every armed cron campaign at `now` (naive UTC): fire or skip what is due."""
    grace_s = ctx.settings.beat_grace_s
    firings = []
    for campaign in armed_campaigns(ctx.engine):
        due = campaign.due(now)
        if due is None or _decided(ctx.engine, campaign.id, due):
            continue
        firing = claim(ctx.engine, campaign, due, now, grace_s)
        if firing.run_id is not None:
            enqueue("siyu.materialise", firing.run_id, queue=keys(ctx).queue)
        _log(firing, campaign.tz)
        firings.append(firing)
    for name in finish_schedules(ctx.engine, now):
        log.info("campaign %s completed: its schedule has ended", name)
    return firings


def _log(firing: Firing, tz: str) -> None:
    when = _local(firing.due_at, tz).isoformat()
    if firing.status == FiringStatus.FIRED:
        log.info("fired %s due %s: run %s", firing.campaign, when, firing.run_id)
    elif firing.status == FiringStatus.SKIPPED:
        log.warning("skipped %s due %s: %s", firing.campaign, when, firing.reason)
    else:
        log.debug("%s due %s: %s", firing.campaign, when, firing.status)


def history(conn: Connection, campaign_id: int) -> list[dict[str, Any]]:
    """The campaign's decided due times, oldest first: due_at, status, reason, run_id."""
    stmt = (
        select(F.due_at, F.status, F.reason, F.run_id)
        .where(F.campaign_id == campaign_id)
        .order_by(F.due_at)
    )
    return [dict(row._mapping) for row in conn.execute(stmt)]
