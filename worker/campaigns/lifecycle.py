"""Create, start, pause, resume and cancel campaigns; start scheduled runs when due."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from croniter import croniter
from sqlalchemy import Engine, select, update
from sqlmodel import Session, col

from worker.campaigns import lookup
from worker.campaigns.materialise import count_members, max_contact_id
from worker.campaigns.timeparse import parse_when, zone
from worker.campaigns.validate import render_samples
from worker.channels.registry import build_channel
from worker.errors import UserError
from worker.runtime import Context, enqueue
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import (
    Campaign,
    CampaignAccount,
    CampaignRun,
    CampaignStatus,
    Delivery,
    DeliveryState,
    Segment,
    utcnow,
)

log = logging.getLogger(__name__)
KINDS = ("marketing", "service")
D = tables.deliveries.c


@dataclass
class CampaignSpec:
    name: str
    segment: str
    template: str
    accounts: list[str]
    variables: dict[str, str] = field(default_factory=dict)
    start: str | None = None
    end: str | None = None
    cron: str | None = None
    tz: str = "Asia/Shanghai"
    kind: str = "marketing"


def _check_spec(spec: CampaignSpec) -> tuple[datetime | None, datetime | None]:
    if not spec.name.strip():
        raise UserError("campaign name must not be empty")
    if spec.kind not in KINDS:
        raise UserError(f"--kind must be one of {', '.join(KINDS)}, got {spec.kind!r}")
    if not spec.accounts:
        raise UserError("--accounts needs at least one account name")
    if len(set(spec.accounts)) != len(spec.accounts):
        raise UserError("--accounts lists an account twice")
    zone(spec.tz)
    if spec.cron is not None and not croniter.is_valid(spec.cron):
        raise UserError(f"--cron: {spec.cron!r} is not a valid cron expression (5 fields)")
    start = parse_when(spec.start, spec.tz, field="--start") if spec.start else None
    end = parse_when(spec.end, spec.tz, field="--end") if spec.end else None
    if start and end and end <= start:
        raise UserError("--end must be after --start")
    if end and end <= utcnow() and not spec.cron:
        raise UserError("--end is in the past")
    return start, end


def create_campaign(engine: Engine, templates_dir: object, spec: CampaignSpec) -> Campaign:
    """Validate everything a send will need (template for sample members too), then store."""
    start, end = _check_spec(spec)
    with Session(for_writing(engine), expire_on_commit=False) as session:
        if session.exec(
            select(Campaign.id).where(Campaign.name == spec.name)  # type: ignore[call-overload]
        ).first():
            raise UserError(f"a campaign named {spec.name!r} already exists")
        segment = lookup.segment_by_name(session, spec.segment)
        accounts = [lookup.account_by_name(session, name) for name in spec.accounts]
        for account in accounts:
            build_channel(account.channel, account.name, account.config)
        render_samples(  # raises TemplateError (file, line) before anything is stored
            engine,
            templates_dir,
            spec.template,
            spec.variables,
            campaign=spec.name,
            expression=segment.expression,
            accounts=accounts,
        )
        assert segment.id is not None
        campaign = Campaign(
            name=spec.name,
            segment_id=segment.id,
            template=spec.template,
            vars=spec.variables,
            kind=spec.kind,
            start_at=start,
            end_at=end,
            cron=spec.cron,
            tz=spec.tz,
            status=CampaignStatus.DRAFT,
        )
        session.add(campaign)
        session.flush()
        for position, account in enumerate(accounts):
            assert campaign.id is not None and account.id is not None
            session.add(
                CampaignAccount(campaign_id=campaign.id, account_id=account.id, position=position)
            )
        session.commit()
        return campaign


def start_campaign(ctx: Context, name: str) -> CampaignRun:
    """Start now (materialise + lanes) or schedule for the campaign's start time."""
    with Session(for_writing(ctx.engine), expire_on_commit=False) as session:
        campaign = lookup.campaign_by_name(session, name)
        if campaign.status != CampaignStatus.DRAFT:
            raise UserError(
                f"campaign {name!r} is {campaign.status}; only a draft can be started "
                "(use resume for a paused one)"
            )
        if campaign.cron:
            raise UserError(
                "recurring (--cron) campaigns are not implemented yet; create it without --cron"
            )
        for account in lookup.campaign_accounts(session, campaign.id):  # type: ignore[arg-type]
            build_channel(account.channel, account.name, account.config)
        now = utcnow()
        due = campaign.start_at is None or campaign.start_at <= now
        status = CampaignStatus.RUNNING if due else CampaignStatus.SCHEDULED
        assert campaign.id is not None
        run = CampaignRun(
            campaign_id=campaign.id,
            status=status,
            start_at=campaign.start_at or now,
            end_at=campaign.end_at,
        )
        session.add(run)
        campaign.status = status
        session.add(campaign)
        session.commit()
    if due:
        _begin_run(ctx, run)
    return run


def _begin_run(ctx: Context, run: CampaignRun) -> None:
    """Snapshot the audience, mark the run running, and trigger materialisation."""
    with Session(for_writing(ctx.engine), expire_on_commit=False) as session:
        campaign = session.get(Campaign, run.campaign_id)
        assert campaign is not None
        segment = session.get(Segment, campaign.segment_id)
        assert segment is not None
        snapshot = max_contact_id(ctx.engine)
        run.snapshot_max_contact_id = snapshot
        run.expected_total = count_members(ctx.engine, segment.expression, snapshot)
        run.started_at = utcnow()
        run.status = CampaignStatus.RUNNING
        session.add(run)
        campaign.status = CampaignStatus.RUNNING
        session.add(campaign)
        session.commit()
    enqueue("siyu.materialise", run.id)


def start_due_runs(ctx: Context) -> list[int]:
    """Scheduled runs whose start time has come begin now (called by the tick)."""
    with Session(for_writing(ctx.engine), expire_on_commit=False) as session:
        due = (
            session.exec(
                select(CampaignRun).where(  # type: ignore[call-overload]
                    col(CampaignRun.status) == CampaignStatus.SCHEDULED,
                    col(CampaignRun.start_at) <= utcnow(),
                )
            )
            .scalars()
            .all()
        )
    for run in due:
        _begin_run(ctx, run)
    return [run.id for run in due]


def _set_status(engine: Engine, name: str, allowed: tuple[str, ...], new: str) -> Campaign:
    with Session(for_writing(engine), expire_on_commit=False) as session:
        campaign = lookup.campaign_by_name(session, name)
        if campaign.status not in allowed:
            raise UserError(
                f"campaign {name!r} is {campaign.status}; this needs it to be "
                + " or ".join(allowed)
            )
        run = lookup.latest_run(session, campaign.id)  # type: ignore[arg-type]
        campaign.status = new
        session.add(campaign)
        if run is not None and run.status in allowed:
            run.status = new
            if new == CampaignStatus.RUNNING and run.start_at > utcnow():
                run.status = campaign.status = CampaignStatus.SCHEDULED
            session.add(run)
        session.commit()
        return campaign


def pause_campaign(engine: Engine, name: str) -> Campaign:
    """Lanes stop claiming this campaign's rows at their next batch."""
    return _set_status(
        engine, name, (CampaignStatus.RUNNING, CampaignStatus.SCHEDULED), CampaignStatus.PAUSED
    )


def resume_campaign(ctx: Context, name: str) -> Campaign:
    """Continue where it stopped; rows already sent are never sent again."""
    campaign = _set_status(ctx.engine, name, (CampaignStatus.PAUSED,), CampaignStatus.RUNNING)
    from worker.dispatch.tick import tick

    tick(ctx, force=True)
    return campaign


def cancel_campaign(ctx: Context, name: str) -> Campaign:
    """Stop for good: every row not yet being sent becomes `skipped` (reason `cancelled`)."""
    allowed = (
        CampaignStatus.DRAFT,
        CampaignStatus.SCHEDULED,
        CampaignStatus.RUNNING,
        CampaignStatus.PAUSED,
    )
    campaign = _set_status(ctx.engine, name, allowed, CampaignStatus.CANCELLED)
    with Session(ctx.engine) as session:
        run = lookup.latest_run(session, campaign.id)  # type: ignore[arg-type]
    if run is None:
        return campaign
    with ctx.engine.begin() as conn:
        conn.execute(
            update(Delivery)
            .where(D.run_id == run.id, D.state.in_([DeliveryState.PENDING, DeliveryState.CLAIMED]))
            .values(
                state=DeliveryState.SKIPPED,
                reason="cancelled",
                lease_owner=None,
                lease_until=None,
                updated_at=utcnow(),
            )
        )
    if run.started_at is not None and not run.materialised:
        enqueue("siyu.materialise", run.id)
    return campaign
