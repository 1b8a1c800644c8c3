"""`campaigns list` and `campaigns show`: what exists, and the whole definition of one.

Times are ISO 8601 in the campaign's time zone with its offset, to the second. A run's
counts follow `campaigns status`: claimed and sending rows count as pending, and a run not yet
fully materialised counts the rest of its audience snapshot as pending.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlmodel import Session, col

from worker.campaigns import lookup, recurring
from worker.campaigns.timeparse import local_iso, zone
from worker.store import tallies
from worker.store.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    DeliveryState,
    Segment,
    utcnow,
)

REPORTED = ("pending", "sent", "failed", "skipped", "unknown")
OPEN = (DeliveryState.CLAIMED, DeliveryState.SENDING)


def _counts(conn: Connection, run_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Each run's deliveries by reported state, from the tallies (`store.tallies`)."""
    out = {}
    for run_id, by_key in tallies.run_counts(conn, run_ids).items():
        counts = out[run_id] = dict.fromkeys(REPORTED, 0)
        for (_account, state), n in by_key.items():
            counts["pending" if state in OPEN else state] += n
    return out


def _total(run: CampaignRun, counts: dict[str, int]) -> int:
    """Every member of the run's audience once; the unmaterialised rest counts as pending."""
    total = sum(counts.values())
    unfinished = not run.materialised and run.status != CampaignStatus.CANCELLED
    if run.started_at is not None and unfinished:
        counts["pending"] += max(0, run.expected_total - total)
        total = max(total, run.expected_total)
    return total


def window_of(campaign: Campaign, run: CampaignRun | None) -> dict[str, str | None]:
    """The latest run's window once there is one (it is what is used), else the campaign's."""
    tz = zone(campaign.tz)
    start, end = (run.start_at, run.end_at) if run else (campaign.start_at, campaign.end_at)
    return {
        "start": local_iso(start, tz) or None,
        "end": local_iso(end, tz) or None,
        "tz": campaign.tz,
    }


def list_campaigns(engine: Engine) -> list[dict[str, Any]]:
    """Every campaign by name: status, progress of its latest run (sent of total), window."""
    with Session(engine) as session:
        campaigns = list(session.scalars(select(Campaign).order_by(col(Campaign.name))))
        latest = {c.id: lookup.latest_run(session, c.id) for c in campaigns if c.id}
        counts = _counts(session.connection(), [r.id for r in latest.values() if r and r.id])
    out = []
    for campaign in campaigns:
        run = latest.get(campaign.id or 0)
        run_counts = counts.get(run.id, dict.fromkeys(REPORTED, 0)) if run and run.id else None
        total = _total(run, run_counts) if run and run_counts is not None else 0
        out.append(
            {
                "name": campaign.name,
                "status": campaign.status,
                "kind": campaign.kind,
                "sent": run_counts["sent"] if run_counts else 0,
                "total": total,
                "window": window_of(campaign, run),
            }
        )
    return out


def _runs(session: Session, campaign: Campaign) -> list[dict[str, Any]]:
    runs = list(
        session.scalars(
            select(CampaignRun)
            .where(col(CampaignRun.campaign_id) == campaign.id)
            .order_by(col(CampaignRun.id))
        )
    )
    counts = _counts(session.connection(), [r.id for r in runs if r.id])
    tz = zone(campaign.tz)
    out = []
    for run in runs:
        run_counts = counts[run.id]  # type: ignore[index]
        total = _total(run, run_counts)
        out.append(
            {
                "id": run.id,
                "status": run.status,
                "start": local_iso(run.start_at, tz) or None,
                "end": local_iso(run.end_at, tz) or None,
                "started_at": local_iso(run.started_at, tz) or None,
                "finished_at": local_iso(run.finished_at, tz) or None,
                "total": total,
                "counts": run_counts,
            }
        )
    return out


def _schedule(session: Session, campaign: Campaign, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A cron campaign's next due time and every decided one, each with its run's counts."""
    if not campaign.cron or campaign.id is None:
        return {"next_due": None, "firings": []}
    tz = zone(campaign.tz)
    armed = recurring.Armed(
        campaign.id,
        campaign.name,
        campaign.cron,
        campaign.tz,
        campaign.status,
        campaign.start_at,
        campaign.end_at,
    )
    by_run = {run["id"]: run for run in runs}
    firings = []
    for firing in recurring.history(session.connection(), campaign.id):
        run = by_run.get(firing["run_id"])
        firings.append(
            {
                "due": local_iso(firing["due_at"], tz),
                "status": firing["status"],
                "reason": firing["reason"],
                "run": firing["run_id"],
                "run_status": run["status"] if run else None,
                "total": run["total"] if run else 0,
                "counts": run["counts"] if run else dict.fromkeys(REPORTED, 0),
            }
        )
    return {"next_due": local_iso(armed.upcoming(utcnow()), tz) or None, "firings": firings}


def show_campaign(engine: Engine, name: str) -> dict[str, Any]:
    """The whole definition of one campaign, and its runs with their counts; for a cron
    campaign also its next due time and its decided due times (fired or skipped, and why)."""
    with Session(engine) as session:
        campaign = lookup.campaign_by_name(session, name)
        segment = session.get(Segment, campaign.segment_id)
        accounts = lookup.campaign_accounts(session, campaign.id)  # type: ignore[arg-type]
        runs = _runs(session, campaign)
        tz = zone(campaign.tz)
        return {
            "name": campaign.name,
            "status": campaign.status,
            "kind": campaign.kind,
            "segment": {
                "name": segment.name if segment else None,
                "where": segment.expression if segment else None,
            },
            "template": campaign.template,
            "vars": dict(campaign.vars),
            "accounts": [a.name for a in accounts],
            "start": local_iso(campaign.start_at, tz) or None,
            "end": local_iso(campaign.end_at, tz) or None,
            "tz": campaign.tz,
            "cron": campaign.cron,
            "created_at": local_iso(campaign.created_at, tz),
            "runs": runs,
            **_schedule(session, campaign, runs),
        }
