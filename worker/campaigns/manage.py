"""Change or remove a campaign that has not begun: `campaigns edit` and `campaigns delete`.

Both follow DESIGN 14: they lock the campaign row (and its latest run), check the status in
the same transaction, then write. An edit is validated like a create (the merged definition,
rendered for sample members) before the lock is taken; under the lock it applies only if the
stored definition is still the one it was validated against, so two edits never undo each
other. Only drafts and scheduled campaigns whose run has not begun can be edited; a scheduled
run's window follows its campaign's. An armed cron campaign (scheduled, no run yet) can be
edited too: its schedule follows the new --cron, --tz, --start and --end. Only drafts (which
have no runs) can be deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlmodel import Session

from worker.campaigns import lookup, transitions
from worker.campaigns.lifecycle import CampaignSpec, check_spec, remedy, validate_sends
from worker.campaigns.timeparse import iso_utc
from worker.errors import Conflict, UserError
from worker.store import tables
from worker.store.models import CampaignStatus

C = tables.campaigns.c
CA = tables.campaign_accounts.c
R = tables.campaign_runs.c
EDITABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)


@dataclass
class CampaignChanges:
    """What an edit changes; None (or empty) keeps the stored value."""

    segment: str | None = None
    template: str | None = None
    accounts: list[str] | None = None
    set_vars: dict[str, str] = field(default_factory=dict)
    unset_vars: list[str] = field(default_factory=list)
    start: str | None = None
    end: str | None = None
    cron: str | None = None
    tz: str | None = None
    kind: str | None = None
    skip_unrenderable: bool | None = None


@dataclass(frozen=True)
class _Stored:
    """The parts of a stored campaign an edit may change, to compare under the lock."""

    segment_id: int
    template: str
    vars: dict[str, str]
    kind: str
    start_at: datetime | None
    end_at: datetime | None
    cron: str | None
    tz: str
    skip_unrenderable: bool | None
    account_ids: tuple[int, ...]


def _stored(conn: Connection, campaign_id: int) -> _Stored:
    row = conn.execute(
        select(
            C.segment_id,
            C.template,
            C.vars,
            C.kind,
            C.start_at,
            C.end_at,
            C.cron,
            C.tz,
            C.skip_unrenderable,
        ).where(C.id == campaign_id)
    ).one()
    ids = conn.execute(
        select(CA.account_id).where(CA.campaign_id == campaign_id).order_by(CA.position)
    ).scalars()
    return _Stored(*row[:2], dict(row[2] or {}), *row[3:], tuple(ids))


def _merge(
    name: str, stored: _Stored, segment: str, accounts: list[str], ch: CampaignChanges
) -> CampaignSpec:
    unknown = [key for key in ch.unset_vars if key not in stored.vars and key not in ch.set_vars]
    if unknown:
        raise UserError(f"--unset-var: the campaign has no variable {unknown[0]!r}")
    variables = {k: v for k, v in stored.vars.items() if k not in ch.unset_vars}
    variables.update(ch.set_vars)
    return CampaignSpec(
        name=name,
        segment=ch.segment or segment,
        template=ch.template or stored.template,
        accounts=accounts if ch.accounts is None else ch.accounts,
        variables=variables,
        # Stored times keep their instant (UTC, with offset) unless given anew.
        start=ch.start or iso_utc(stored.start_at),
        end=ch.end or iso_utc(stored.end_at),
        cron=ch.cron or stored.cron,
        tz=ch.tz or stored.tz,
        kind=ch.kind or stored.kind,
        skip_unrenderable=bool(
            stored.skip_unrenderable if ch.skip_unrenderable is None else ch.skip_unrenderable
        ),
    )


def _validate(
    engine: Engine, templates_dir: object, name: str, ch: CampaignChanges
) -> tuple[CampaignSpec, _Stored, list[int], int]:
    """The merged spec, validated like a create; and what it was merged from."""
    with Session(engine) as session:
        campaign = lookup.campaign_by_name(session, name)
        stored = _stored(session.connection(), campaign.id)  # type: ignore[arg-type]
        current = [a.name for a in lookup.campaign_accounts(session, campaign.id)]  # type: ignore[arg-type]
        segment_name = session.execute(
            select(tables.segments.c.name).where(tables.segments.c.id == stored.segment_id)
        ).scalar_one()
        spec = _merge(name, stored, segment_name, current, ch)
        check_spec(spec)
        segment = lookup.segment_by_name(session, spec.segment)
        accounts = [lookup.account_by_name(session, n) for n in spec.accounts]
    validate_sends(  # every member rendered, before anything is changed
        engine,
        templates_dir,
        spec,
        segment.expression,
        accounts,
        remedy=remedy("add --skip-unrenderable to the edit"),
    )
    assert segment.id is not None and all(a.id is not None for a in accounts)
    return spec, stored, [a.id for a in accounts if a.id is not None], segment.id


def _refuse_edit(found: transitions.Locked) -> Conflict:
    if found.status in (CampaignStatus.RUNNING, CampaignStatus.PAUSED):
        instead = "cancel it and create a new campaign instead"
    else:
        instead = "create a new campaign instead"
    return Conflict(
        f"campaign {found.name!r} is {found.status}: only draft and scheduled campaigns can be "
        f"edited; {instead}"
    )


def edit_campaign(
    engine: Engine, templates_dir: object, name: str, changes: CampaignChanges
) -> CampaignSpec:
    """Apply `changes` to a draft or a scheduled campaign whose run has not begun."""
    spec, stored, account_ids, segment_id = _validate(engine, templates_dir, name, changes)
    start, end = check_spec(spec)
    with transitions.locked(engine, name=name) as found:
        if found.status not in EDITABLE:
            raise _refuse_edit(found)
        run = found.run
        if (
            found.status == CampaignStatus.SCHEDULED
            and run is not None
            and (run.status != CampaignStatus.SCHEDULED or run.started_at is not None)
        ):
            raise Conflict(f"campaign {name!r} has begun sending; cancel it instead of editing")
        if found.status == CampaignStatus.SCHEDULED and (stored.cron is None) != (
            spec.cron is None
        ):
            raise Conflict(
                f"campaign {name!r} is scheduled: --cron cannot make it recurring now; "
                "cancel it and create a new campaign instead"
            )
        if _stored(found.conn, found.campaign_id) != stored:
            raise Conflict(f"campaign {name!r} changed while being edited; run the command again")
        _write(found, spec, segment_id, account_ids, start, end)
    return spec


def _write(
    found: transitions.Locked,
    spec: CampaignSpec,
    segment_id: int,
    account_ids: list[int],
    start: datetime | None,
    end: datetime | None,
) -> None:
    conn = found.conn
    conn.execute(
        update(tables.campaigns)
        .where(C.id == found.campaign_id, C.status == found.status)
        .values(
            segment_id=segment_id,
            template=spec.template,
            vars=spec.variables,
            kind=spec.kind,
            start_at=start,
            end_at=end,
            cron=spec.cron,
            tz=spec.tz,
            skip_unrenderable=spec.skip_unrenderable,
        )
    )
    conn.execute(delete(tables.campaign_accounts).where(CA.campaign_id == found.campaign_id))
    conn.execute(
        insert(tables.campaign_accounts),
        [
            {"campaign_id": found.campaign_id, "account_id": account_id, "position": position}
            for position, account_id in enumerate(account_ids)
        ],
    )
    if found.run is not None and found.status == CampaignStatus.SCHEDULED:
        values: dict[str, Any] = {"end_at": end}
        if start is not None:  # without --start the run began its wait when it was started
            values["start_at"] = start
        conn.execute(
            update(tables.campaign_runs)
            .where(
                R.id == found.run.id,
                R.status == CampaignStatus.SCHEDULED,
                R.started_at.is_(None),
            )
            .values(**values)
        )


def delete_campaign(engine: Engine, name: str) -> None:
    """Delete a draft and its sender list; anything that was started is kept for its history."""
    with transitions.locked(engine, name=name) as found:
        if found.status != CampaignStatus.DRAFT:
            if found.status in transitions.CANCELLABLE:
                instead = "cancel it instead"
            else:
                instead = "it is kept for its history"
            raise Conflict(
                f"campaign {name!r} is {found.status}: only drafts can be deleted; {instead}"
            )
        if found.run is not None:  # a draft never has a run; refuse rather than orphan one
            raise Conflict(f"campaign {name!r} has runs; cancel it instead")
        conn = found.conn
        conn.execute(delete(tables.campaign_accounts).where(CA.campaign_id == found.campaign_id))
        conn.execute(
            delete(tables.campaigns).where(
                C.id == found.campaign_id, C.status == CampaignStatus.DRAFT
            )
        )
