"""The dashboard `/`: live campaigns with progress bars and the sends-per-minute chart.

The page holds one fragment, `/live`, that htmx fetches again every few seconds (while the
tab is visible): one request per refresh for the whole dashboard, never one per campaign.
Progress comes from `list_campaigns` and the chart from `tallies.sent_per_minute`, both
read from the incrementally kept counts, so a refresh costs a few small queries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from sqlalchemy import Engine, select

from worker.campaigns.overview import list_campaigns
from worker.campaigns.timeparse import zone
from worker.console.chart import ChartText, rate_chart
from worker.console.web import Console, guard_for, route_class
from worker.store import tables
from worker.store.models import CampaignStatus, utcnow
from worker.store.tallies import sent_per_minute

LIVE = (CampaignStatus.RUNNING, CampaignStatus.SCHEDULED, CampaignStatus.PAUSED)
CHART_MINUTES = 60
REFRESH_S = 5


def per_account_minutes(engine: Engine, start: datetime) -> dict[str, dict[datetime, int]]:
    """Account name -> UTC minute -> messages sent, from `start` (naive UTC) on."""
    accounts = tables.accounts.c
    with engine.connect() as conn:
        counts = sent_per_minute(conn, start)
        names = dict(conn.execute(select(accounts.id, accounts.name)).tuples().all())
    return {names[a]: minutes for a, minutes in counts.items() if a is not None and a in names}


def live_campaigns(engine: Engine) -> list[dict[str, Any]]:
    """Running, scheduled and paused campaigns, running first."""
    rows = [row for row in list_campaigns(engine) if row["status"] in LIVE]
    return sorted(rows, key=lambda row: (LIVE.index(row["status"]), row["name"]))


def router(console: Console) -> APIRouter:
    routes = APIRouter(route_class=route_class(console), dependencies=[Depends(guard_for(console))])

    def live_values(request: Request) -> dict[str, Any]:
        ctx = console.context()
        _ = console.gettext(request)
        start = (utcnow() - timedelta(minutes=CHART_MINUTES - 1)).replace(second=0, microsecond=0)
        text = ChartText(
            title=_("Messages sent per minute by account, last hour"),
            x_label=_("time"),
            y_label=_("messages / minute"),
            empty=_("Nothing sent in the last hour"),
        )
        chart: Markup = rate_chart(
            per_account_minutes(ctx.engine, start),
            start,
            CHART_MINUTES,
            zone(ctx.settings.tz),
            text,
        )
        return {
            "campaigns": live_campaigns(ctx.engine),
            "chart": chart,
            "refresh_s": REFRESH_S,
            "tz": ctx.settings.tz,
        }

    @routes.get("/", response_class=HTMLResponse)
    def dashboard(request: Request) -> HTMLResponse:
        return console.render(request, "dashboard.html", **live_values(request))

    @routes.get("/live", response_class=HTMLResponse)
    def live(request: Request) -> HTMLResponse:
        return console.render(request, "dashboard_live.html", **live_values(request))

    return routes
