"""Read and update the run-level facts a lane needs: which runs are live, account state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, exists, select, update

from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import (
    OPEN_STATES,
    Account,
    Campaign,
    CampaignRun,
    CampaignStatus,
    utcnow,
)

R = tables.campaign_runs.c
C = tables.campaigns.c
A = tables.accounts.c
D = tables.deliveries.c


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: int
    campaign_id: int
    campaign: str
    template: str
    variables: dict[str, str]
    kind: str
    start_at: datetime
    end_at: datetime | None
    skip_unrenderable: bool = False


def running_runs(engine: Engine) -> dict[int, RunInfo]:
    """Every run currently allowed to send, with what rendering needs."""
    stmt = (
        select(
            R.id,
            C.id,
            C.name,
            C.template,
            C.vars,
            C.kind,
            R.start_at,
            R.end_at,
            C.skip_unrenderable,
        )
        .join(tables.campaigns, C.id == R.campaign_id)
        .where(R.status == CampaignStatus.RUNNING)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {
        r[0]: RunInfo(r[0], r[1], r[2], r[3], dict(r[4] or {}), r[5], r[6], r[7], bool(r[8]))
        for r in rows
    }


def run_statuses(engine: Engine, run_ids: list[int]) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(select(R.id, R.status).where(R.id.in_(run_ids))).all()
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True, slots=True)
class AccountInfo:
    id: int
    name: str
    channel: str
    config: dict[str, object]
    state: str
    cooldown_until: datetime | None
    tz: str
    policy: str | None


def load_account(engine: Engine, account_id: int) -> AccountInfo | None:
    stmt = select(
        A.id, A.name, A.channel, A.config, A.state, A.cooldown_until, A.tz, A.policy
    ).where(A.id == account_id)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return AccountInfo(row[0], row[1], row[2], dict(row[3] or {}), *row[4:])


def set_account_state(
    engine: Engine,
    account_id: int,
    state: str,
    reason: str | None = None,
    cooldown_until: datetime | None = None,
) -> None:
    stmt = (
        update(Account)
        .where(A.id == account_id)
        .values(state=state, state_reason=reason, cooldown_until=cooldown_until)
    )
    with engine.begin() as conn:
        conn.execute(stmt)


def set_next_send_at(engine: Engine, account_id: int, when: datetime | None) -> None:
    """When the account can send next (None: now); the tick wakes its lane then."""
    with engine.begin() as conn:
        conn.execute(update(Account).where(A.id == account_id).values(next_send_at=when))


def complete_finished_runs(engine: Engine, run_ids: list[int] | None = None) -> list[int]:
    """Complete running runs that are materialised and have no open delivery left.

    Each completion is one conditional UPDATE whose WHERE holds the whole rule, taken after
    the campaign row's lock (the order every transition locks in, `campaigns.transitions`),
    so a run that can still gain deliveries is never completed.
    """
    open_rows = exists().where(D.run_id == R.id, D.state.in_(list(OPEN_STATES)))
    finished = (R.status == CampaignStatus.RUNNING, R.materialised.is_(True), ~open_rows)
    stmt = select(R.id, R.campaign_id).where(*finished)
    if run_ids is not None:
        stmt = stmt.where(R.id.in_(run_ids))
    with engine.connect() as conn:
        candidates = conn.execute(stmt).all()
    done: list[int] = []
    for run_id, campaign_id in candidates:
        with for_writing(engine).begin() as conn:
            conn.execute(select(C.id).where(C.id == campaign_id).with_for_update())
            changed = conn.execute(
                update(CampaignRun)
                .where(R.id == run_id, *finished)
                .values(status=CampaignStatus.COMPLETED, finished_at=utcnow())
            ).rowcount
            if changed:
                conn.execute(
                    update(Campaign)
                    .where(
                        C.id == campaign_id, C.status == CampaignStatus.RUNNING, C.cron.is_(None)
                    )
                    .values(status=CampaignStatus.COMPLETED)
                )
                done.append(run_id)
    return done
