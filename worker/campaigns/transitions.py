"""Campaign and run transitions, each a compare-and-set under the rows' locks (DESIGN 14).

Every transition locks the campaign row, then its run row (always in that order, so two
transitions never deadlock), checks the state it expects and writes the new one in the same
transaction; a tick or another operator may run between any two statements of any process and
still find a consistent state. The rules:

    draft --start--> scheduled --begin (audience snapshot)--> running --complete--> completed
    scheduled | running --pause--> paused --resume--> scheduled (never begun) | running
    draft | scheduled | running | paused --cancel--> cancelled

A cron campaign is armed instead (draft --start--> scheduled, no run); `campaigns.recurring`
opens one begun run per due time, and the campaign is `running` from the first one on. It is
never completed by a run, only when its schedule has ended (`recurring.finish_schedules`).

A run is `running` only once its audience snapshot is recorded, in the same transaction: a
run that could still gain deliveries is never complete (`dispatch.runs.complete_finished_runs`
needs it materialised up to that snapshot).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, select, update

from worker.audience.segments import compile_segment
from worker.dispatch import outbox
from worker.errors import Conflict, NotFound, UserError
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import CampaignStatus, utcnow

C = tables.campaigns.c
R = tables.campaign_runs.c
S = tables.segments.c
CT = tables.contacts.c
D = tables.deliveries.c


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    status: str
    start_at: datetime
    started_at: datetime | None
    materialised: bool


@dataclass(frozen=True, slots=True)
class Locked:
    """A campaign row and its latest run, both locked by the current transaction."""

    conn: Connection
    campaign_id: int
    name: str
    status: str
    run: RunRow | None


def max_contact_id(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(CT.id), 0))).scalar_one())


def count_members(
    conn: Connection, expression: str, upto_id: int, *where: ColumnElement[Any]
) -> int:
    """Members of the segment up to `upto_id` that also meet `where` (evergreen runs)."""
    stmt = (
        select(func.count())
        .select_from(tables.contacts)
        .where(compile_segment(expression), CT.id <= upto_id, *where)
    )
    return int(conn.execute(stmt).scalar_one())


def _run_row(conn: Connection, where: Any) -> RunRow | None:
    row = conn.execute(
        select(R.id, R.status, R.start_at, R.started_at, R.materialised)
        .where(where)
        .order_by(R.id.desc())
        .limit(1)
        .with_for_update()
    ).first()
    return None if row is None else RunRow(*row)


@contextmanager
def locked(
    engine: Engine, *, name: str | None = None, run_id: int | None = None
) -> Iterator[Locked]:
    """Lock a campaign (by name, or the one of `run_id`) and then its run, in one transaction.

    PostgreSQL: `SELECT ... FOR UPDATE`; SQLite: the transaction's `BEGIN IMMEDIATE`.
    Without `run_id` the run is the campaign's latest.
    """
    with for_writing(engine).begin() as conn:
        if run_id is not None:
            where = C.id == select(R.campaign_id).where(R.id == run_id).scalar_subquery()
        else:
            where = C.name == name
        row = conn.execute(select(C.id, C.name, C.status).where(where).with_for_update()).first()
        if row is None:
            raise NotFound(f"no campaign named {name!r}" if name else f"no run {run_id}")
        run_where = R.id == run_id if run_id is not None else R.campaign_id == row[0]
        yield Locked(conn, row[0], row[1], row[2], _run_row(conn, run_where))


def _set_campaign(conn: Connection, campaign_id: int, expected: Sequence[str], new: str) -> bool:
    changed = conn.execute(
        update(tables.campaigns)
        .where(C.id == campaign_id, C.status.in_(list(expected)))
        .values(status=new)
    ).rowcount
    return bool(changed)


def _set_run(conn: Connection, run_id: int, expected: Sequence[str], **values: Any) -> bool:
    changed = conn.execute(
        update(tables.campaign_runs)
        .where(R.id == run_id, R.status.in_(list(expected)))
        .values(**values)
    ).rowcount
    return bool(changed)


def _refuse(found: Locked, needs: Sequence[str], hint: str = "") -> UserError:
    return Conflict(
        f"campaign {found.name!r} is {found.status}; this needs it to be "
        + " or ".join(needs)
        + hint
    )


def refuse_start(name: str, status: str) -> UserError:
    """Why a campaign that is not a draft cannot be started."""
    return Conflict(
        f"campaign {name!r} is {status}; this needs it to be draft (use resume for a paused one)"
    )


def open_run(engine: Engine, name: str, start_at: datetime | None, end_at: datetime | None) -> int:
    """draft -> scheduled, with a new run (not yet begun: no audience snapshot)."""
    with locked(engine, name=name) as found:
        if found.status != CampaignStatus.DRAFT:
            raise refuse_start(found.name, found.status)
        _set_campaign(
            found.conn, found.campaign_id, [CampaignStatus.DRAFT], CampaignStatus.SCHEDULED
        )
        now = utcnow()
        run_id = found.conn.execute(
            insert(tables.campaign_runs)
            .values(
                campaign_id=found.campaign_id,
                status=CampaignStatus.SCHEDULED,
                start_at=start_at or now,
                end_at=end_at,
                snapshot_max_contact_id=0,
                materialised_upto=0,
                materialised=False,
                expected_total=0,
                created_at=now,
            )
            .returning(R.id)
        ).scalar_one()
    return int(run_id)


def arm(engine: Engine, name: str, start_at: datetime) -> None:
    """draft -> scheduled for a cron campaign: no run yet, `siyu beat` opens one per due time.

    The schedule begins at `start_at` (the campaign's --start, else now), stored as its start.
    """
    with locked(engine, name=name) as found:
        if found.status != CampaignStatus.DRAFT:
            raise refuse_start(found.name, found.status)
        found.conn.execute(
            update(tables.campaigns)
            .where(C.id == found.campaign_id, C.status == CampaignStatus.DRAFT)
            .values(status=CampaignStatus.SCHEDULED, start_at=start_at)
        )


def begin_run(engine: Engine, run_id: int) -> bool:
    """scheduled -> running once due, recording the audience snapshot in the same transaction.

    False (and nothing written) when the run is not scheduled or not yet due: another process
    began it, or it was paused or cancelled meanwhile.
    """
    with locked(engine, run_id=run_id) as found:
        run = found.run
        if run is None or run.status != CampaignStatus.SCHEDULED or run.start_at > utcnow():
            return False
        conn = found.conn
        expression = conn.execute(
            select(S.expression)
            .join(tables.campaigns, C.segment_id == S.id)
            .where(C.id == found.campaign_id)
        ).scalar_one()
        snapshot = max_contact_id(conn)
        _set_run(
            conn,
            run_id,
            [CampaignStatus.SCHEDULED],
            status=CampaignStatus.RUNNING,
            snapshot_max_contact_id=snapshot,
            expected_total=count_members(conn, expression, snapshot),
            started_at=utcnow(),
        )
        _set_campaign(conn, found.campaign_id, [CampaignStatus.SCHEDULED], CampaignStatus.RUNNING)
    return True


def due_runs(engine: Engine) -> list[int]:
    """Scheduled runs whose start time has come."""
    stmt = select(R.id).where(R.status == CampaignStatus.SCHEDULED, R.start_at <= utcnow())
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(stmt.order_by(R.id))]


def pause(engine: Engine, name: str) -> str:
    """scheduled | running -> paused; lanes stop before their next send."""
    live = (CampaignStatus.RUNNING, CampaignStatus.SCHEDULED)
    with locked(engine, name=name) as found:
        if found.status not in live:
            raise _refuse(found, live)
        if found.run is not None:
            _set_run(found.conn, found.run.id, live, status=CampaignStatus.PAUSED)
        _set_campaign(found.conn, found.campaign_id, live, CampaignStatus.PAUSED)
    return CampaignStatus.PAUSED


def resume(engine: Engine, name: str) -> str:
    """paused -> running, or back to scheduled when the run never began (the tick begins it)."""
    with locked(engine, name=name) as found:
        if found.status != CampaignStatus.PAUSED:
            raise _refuse(found, [CampaignStatus.PAUSED])
        begun = found.run is not None and found.run.started_at is not None
        new = CampaignStatus.RUNNING if begun else CampaignStatus.SCHEDULED
        if found.run is not None:
            _set_run(found.conn, found.run.id, [CampaignStatus.PAUSED], status=new)
        _set_campaign(found.conn, found.campaign_id, [CampaignStatus.PAUSED], new)
    return new


CANCELLABLE = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.RUNNING,
    CampaignStatus.PAUSED,
)


def cancel(engine: Engine, name: str) -> int | None:
    """Cancel for good; every row not yet being sent becomes `skipped` (`cancelled`).

    Returns the run id when its materialisation must still finish (it writes the rest of
    the audience as `skipped`), else None.
    """
    with locked(engine, name=name) as found:
        if found.status not in CANCELLABLE:
            raise _refuse(found, CANCELLABLE)
        _set_campaign(found.conn, found.campaign_id, CANCELLABLE, CampaignStatus.CANCELLED)
        run = found.run
        if run is None or not _set_run(
            found.conn, run.id, CANCELLABLE, status=CampaignStatus.CANCELLED, finished_at=utcnow()
        ):
            return None
        outbox.skip_unsent(found.conn, [run.id], "cancelled")
    return run.id if run.started_at is not None and not run.materialised else None
