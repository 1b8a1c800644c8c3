"""`campaigns preview`: rendered messages for sample recipients, nothing sent."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session

from worker.campaigns import lookup
from worker.campaigns.validate import Rendered, render_samples
from worker.store.models import Segment


def preview_campaign(
    engine: Engine, templates_dir: object, name: str, limit: int
) -> list[Rendered]:
    with Session(engine, expire_on_commit=False) as session:
        campaign = lookup.campaign_by_name(session, name)
        segment = session.get(Segment, campaign.segment_id)
        accounts = lookup.campaign_accounts(session, campaign.id)  # type: ignore[arg-type]
    assert segment is not None
    return render_samples(
        engine,
        templates_dir,
        campaign.template,
        dict(campaign.vars),
        campaign=campaign.name,
        expression=segment.expression,
        accounts=accounts,
        limit=limit,
    )
