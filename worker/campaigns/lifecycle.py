"""Create, start, pause, resume and cancel campaigns; start scheduled runs when due."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select
from sqlmodel import Session

from worker.campaigns import lookup, transitions
from worker.campaigns.outlook import Outlook
from worker.campaigns.recurring import check_cron
from worker.campaigns.tick import tick
from worker.campaigns.timeparse import parse_when, zone
from worker.campaigns.validate import RenderReport, check_sends
from worker.dispatch.keys import keys
from worker.errors import Conflict, UserError
from worker.runtime import Context, enqueue
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import (
    Account,
    Campaign,
    CampaignAccount,
    CampaignRun,
    CampaignStatus,
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
    skip_unrenderable: bool = False


def check_spec(spec: CampaignSpec) -> tuple[datetime | None, datetime | None]:
    """Everything about a definition that needs no database; the window as naive UTC.

    For a cron campaign the window bounds the schedule: no due time before --start or
    after --end fires; each run's own window runs from its due time to the next one.

    `campaigns create` and `campaigns edit` both call it, so an edit is held to a create's rules.
    """
    if not spec.name.strip():
        raise UserError("campaign name must not be empty")
    if spec.kind not in KINDS:
        raise UserError(f"--kind must be one of {', '.join(KINDS)}, got {spec.kind!r}")
    if not spec.accounts:
        raise UserError("--accounts needs at least one account name")
    if len(set(spec.accounts)) != len(spec.accounts):
        raise UserError("--accounts lists an account twice")
    if spec.cron is not None:
        spec.cron = check_cron(spec.cron)
    zone(spec.tz)
    start = parse_when(spec.start, spec.tz, field="--start") if spec.start else None
    end = parse_when(spec.end, spec.tz, field="--end") if spec.end else None
    if start and end and end <= start:
        raise UserError("--end must be after --start")
    if end and end <= utcnow():
        raise UserError("--end is in the past")
    return start, end


def remedy(how: str) -> str:
    """The end of an `Unrenderable` error: `how` says how to set --skip-unrenderable."""
    return (
        f"fix those contacts (siyu contacts import) or the template, or {how} to send to the "
        "others and record these as skipped (render_error)"
    )


def validate_sends(
    engine: Engine,
    templates_dir: object,
    spec: CampaignSpec,
    expression: str,
    accounts: list[Account],
    *,
    remedy: str,
) -> RenderReport:
    """What `create` and `edit` check in the database: senders, and every member rendered."""
    return check_sends(
        engine,
        templates_dir,
        spec.template,
        spec.variables,
        campaign=spec.name,
        expression=expression,
        accounts=accounts,
        skip_unrenderable=spec.skip_unrenderable,
        remedy=remedy,
    )


def create_campaign(engine: Engine, templates_dir: object, spec: CampaignSpec) -> Campaign:
    """Validate everything a send will need (every member rendered), then store a draft.

    The check runs before the write transaction (rendering 100k members takes a second or
    two, too long to hold SQLite's write lock); the write re-reads the segment and locks the
    sender rows, so an account removed meanwhile is reported, never a foreign-key error.
    """
    start, end = check_spec(spec)
    with Session(engine, expire_on_commit=False) as session:
        _refuse_taken(session, spec.name)
        segment = lookup.segment_by_name(session, spec.segment)
        accounts = [lookup.account_by_name(session, name) for name in spec.accounts]
    validate_sends(
        engine,
        templates_dir,
        spec,
        segment.expression,
        accounts,
        remedy=remedy("create it with --skip-unrenderable"),
    )
    with Session(for_writing(engine), expire_on_commit=False) as session:
        _refuse_taken(session, spec.name)
        lookup.hold(session, segment)
        for account in accounts:
            lookup.hold(session, account)
        if lookup.segment_by_name(session, spec.segment).expression != segment.expression:
            raise Conflict(f"segment {spec.segment!r} changed meanwhile; run the command again")
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
            skip_unrenderable=spec.skip_unrenderable,
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


def _refuse_taken(session: Session, name: str) -> None:
    taken = select(Campaign.id).where(Campaign.name == name)  # type: ignore[call-overload]
    if session.exec(taken).first():
        raise Conflict(f"a campaign named {name!r} already exists")


@dataclass(frozen=True)
class Started:
    run: CampaignRun | None  # None for a cron campaign: `siyu beat` opens a run per due time
    outlook: Outlook
    status: str


def start_campaign(ctx: Context, name: str, *, force: bool = False) -> Started:
    """Check, then start now (snapshot + materialise + lanes) or at the campaign's start time.

    Every member is rendered again (contacts change after `create`), and the plan says how
    many will really be sent: nothing at all is refused unless `force`. The run is opened
    `scheduled` and begun by a separate compare-and-set, here when it is due, else by the
    tick: whichever comes first does it once. Returns the run as it is now.

    A cron campaign is armed instead (`scheduled`, no run; its schedule begins at --start,
    else now): an empty segment is no refusal, its members may join before a due time.
    """
    from worker.campaigns.plan import plan_campaign

    with Session(ctx.engine, expire_on_commit=False) as session:
        campaign = lookup.campaign_by_name(session, name)
        segment = session.get(Segment, campaign.segment_id)
        accounts = lookup.campaign_accounts(session, campaign.id)  # type: ignore[arg-type]
    assert segment is not None
    if campaign.status != CampaignStatus.DRAFT:  # said before the checks; open_run re-checks
        raise transitions.refuse_start(campaign.name, campaign.status)
    rendered = check_sends(
        ctx.engine,
        ctx.settings.templates_dir,
        campaign.template,
        dict(campaign.vars),
        campaign=name,
        expression=segment.expression,
        accounts=accounts,
        skip_unrenderable=bool(campaign.skip_unrenderable),
        remedy=remedy(f"run `siyu campaigns edit {name} --skip-unrenderable` and start it again"),
    )
    settings = ctx.settings
    plan = plan_campaign(ctx.engine, settings.rate_limits_dir, name, settings.limit_margin_ms)
    outlook = Outlook.of(plan, rendered.failed)
    if campaign.cron:
        transitions.arm(ctx.engine, name, campaign.start_at or utcnow())
        return Started(None, outlook, CampaignStatus.SCHEDULED)
    if not force and (refusal := outlook.refusal(name)):
        raise Conflict(refusal)
    run_id = transitions.open_run(ctx.engine, name, campaign.start_at, campaign.end_at)
    if transitions.begin_run(ctx.engine, run_id):
        enqueue("siyu.materialise", run_id, queue=keys(ctx).queue)
    with Session(ctx.engine) as session:
        run = session.get(CampaignRun, run_id)
        assert run is not None
        return Started(run, outlook, run.status)


def pause_campaign(engine: Engine, name: str) -> str:
    """Lanes stop before their next send; nothing claimed is lost."""
    return transitions.pause(engine, name)


def resume_campaign(ctx: Context, name: str) -> str:
    """Continue where it stopped; rows already sent are never sent again."""
    transitions.resume(ctx.engine, name)
    tick(ctx, force=True)  # begins a due run and wakes the lanes now, not in two seconds
    return _status(ctx.engine, name)


def _status(engine: Engine, name: str) -> str:
    with Session(engine) as session:
        return lookup.campaign_by_name(session, name).status


def cancel_campaign(ctx: Context, name: str) -> str:
    """Stop for good: every row not yet being sent becomes `skipped` (reason `cancelled`)."""
    unfinished = transitions.cancel(ctx.engine, name)
    if unfinished is not None:  # materialisation writes the rest of the audience as skipped
        enqueue("siyu.materialise", unfinished, queue=keys(ctx).queue)
    return CampaignStatus.CANCELLED
