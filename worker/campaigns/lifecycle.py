"""Create, start, pause, resume and cancel campaigns; start scheduled runs when due."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select
from sqlmodel import Session

from worker.campaigns import lookup, transitions
from worker.campaigns.tick import tick
from worker.campaigns.timeparse import parse_when, zone
from worker.campaigns.validate import render_samples
from worker.channels.registry import build_channel
from worker.dispatch.keys import keys
from worker.errors import UserError
from worker.runtime import Context, enqueue
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import (
    Account,
    Campaign,
    CampaignAccount,
    CampaignRun,
    CampaignStatus,
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


def check_spec(spec: CampaignSpec) -> tuple[datetime | None, datetime | None]:
    """Everything about a definition that needs no database; the window as naive UTC.

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
    if spec.cron is not None:  # refused here, so nothing half-made is stored
        raise UserError(
            "--cron: recurring campaigns are not implemented yet; "
            "create it without --cron (one run between --start and --end)"
        )
    zone(spec.tz)
    start = parse_when(spec.start, spec.tz, field="--start") if spec.start else None
    end = parse_when(spec.end, spec.tz, field="--end") if spec.end else None
    if start and end and end <= start:
        raise UserError("--end must be after --start")
    if end and end <= utcnow():
        raise UserError("--end is in the past")
    return start, end


def check_senders(accounts: list[Account]) -> None:
    """Each sender's channel configuration is valid (built now, never at the first send)."""
    for account in accounts:
        build_channel(account.channel, account.name, account.config)


def create_campaign(engine: Engine, templates_dir: object, spec: CampaignSpec) -> Campaign:
    """Validate everything a send will need (template for sample members too), then store."""
    start, end = check_spec(spec)
    with Session(for_writing(engine), expire_on_commit=False) as session:
        if session.exec(
            select(Campaign.id).where(Campaign.name == spec.name)  # type: ignore[call-overload]
        ).first():
            raise UserError(f"a campaign named {spec.name!r} already exists")
        segment = lookup.segment_by_name(session, spec.segment)
        accounts = [lookup.account_by_name(session, name) for name in spec.accounts]
        check_senders(accounts)
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
    """Start now (snapshot + materialise + lanes) or at the campaign's start time.

    The run is opened `scheduled` and begun by a separate compare-and-set, here when it is
    due, else by the tick: whichever comes first does it once. Returns the run as it is now.
    """
    with Session(ctx.engine, expire_on_commit=False) as session:
        campaign = lookup.campaign_by_name(session, name)
        if campaign.cron:
            raise UserError(
                "recurring (--cron) campaigns are not implemented yet; create it without --cron"
            )
        for account in lookup.campaign_accounts(session, campaign.id):  # type: ignore[arg-type]
            build_channel(account.channel, account.name, account.config)
    run_id = transitions.open_run(ctx.engine, name, campaign.start_at, campaign.end_at)
    if transitions.begin_run(ctx.engine, run_id):
        enqueue("siyu.materialise", run_id, queue=keys(ctx).queue)
    with Session(ctx.engine) as session:
        run = session.get(CampaignRun, run_id)
        assert run is not None
        return run


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
