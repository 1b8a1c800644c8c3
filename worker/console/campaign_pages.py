"""A campaign's page: status and progress, the plan before starting, the actions, the log.

    GET  /campaigns                      every campaign
    GET  /campaigns/{name}               status, per-account progress, plan (drafts), log
    GET  /campaigns/{name}/progress      the status part alone (htmx polls it while live)
    GET  /campaigns/{name}/deliveries.csv   the log as CSV (`export.delivery_csv`, streamed)
    POST /campaigns/{name}/{action}      start | pause | resume | cancel

An action the service layer refuses comes back to the page with the CLI's message.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse

from worker.campaigns import lifecycle
from worker.campaigns.export import delivery_csv
from worker.campaigns.outlook import MEANINGS, Outlook
from worker.campaigns.overview import list_campaigns, show_campaign
from worker.campaigns.plan import plan_campaign
from worker.campaigns.preview import preview_campaign
from worker.campaigns.status import campaign_status, latest_run_of
from worker.console.deliveries import log_page
from worker.console.web import Console, back_to, flash, guard_for, route_class
from worker.console.words import word, words
from worker.errors import UserError
from worker.runtime import Context
from worker.services.doctor import worker_warning
from worker.store.models import CampaignStatus, DeliveryState

PREVIEW_SAMPLES = 3
ACTIONS = ("start", "pause", "resume", "cancel")
POLLED = (CampaignStatus.RUNNING, CampaignStatus.SCHEDULED)


def page_of(name: str) -> str:
    return "/campaigns/" + quote(name, safe="")


def plan_values(ctx: Context, name: str) -> dict[str, Any]:
    """The plan and its verdict (`Outlook`), as `campaigns plan` shows them."""
    settings = ctx.settings
    plan = plan_campaign(ctx.engine, settings.rate_limits_dir, name, settings.limit_margin_ms)
    outlook = Outlook.of(plan)
    return {"plan": plan, "outlook": outlook, "meanings": MEANINGS}


def router(console: Console) -> APIRouter:
    routes = APIRouter(route_class=route_class(console), dependencies=[Depends(guard_for(console))])

    @routes.get("/campaigns", response_class=HTMLResponse)
    def campaigns(request: Request) -> HTMLResponse:
        rows = list_campaigns(console.context().engine)
        return console.render(request, "campaigns.html", campaigns=rows)

    @routes.get("/campaigns/{name}/progress", response_class=HTMLResponse)
    def progress(request: Request, name: str) -> HTMLResponse:
        doc = campaign_status(console.context().engine, name)
        return console.render(request, "campaign_progress.html", status=doc, polled=POLLED)

    @routes.get("/campaigns/{name}/deliveries.csv")
    def export(request: Request, name: str, state: str | None = None) -> StreamingResponse:
        lines = delivery_csv(console.context().engine, name, state or None)  # raises first
        filename = quote(f"{name}-deliveries.csv")
        return StreamingResponse(
            (line.encode("utf-8") for line in lines),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"},
        )

    @routes.get("/campaigns/{name}", response_class=HTMLResponse)
    def campaign(
        request: Request,
        name: str,
        state: str | None = None,
        q: str | None = None,
        after: Annotated[int | None, Query()] = None,
    ) -> HTMLResponse:
        ctx = console.context()
        doc = campaign_status(ctx.engine, name)
        values: dict[str, Any] = {
            "status": doc,
            "definition": show_campaign(ctx.engine, name),
            "polled": POLLED,
            "states": [s.value for s in DeliveryState],
            "filters": {"state": state or "", "q": q or ""},
            "log": None,
            "samples": [],
            "plan_error": None,
        }
        if doc["status"] in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
            try:
                values.update(plan_values(ctx, name))
                limit = PREVIEW_SAMPLES
                values["samples"] = preview_campaign(
                    ctx.engine, ctx.settings.templates_dir, name, limit
                )
            except UserError as exc:
                values["plan_error"] = str(exc)
        _, run = latest_run_of(ctx.engine, name)
        if run is not None and run.id is not None:
            values["log"] = log_page(ctx.engine, run.id, state=state or None, search=q, after=after)
        return console.render(request, "campaign.html", **values)

    @routes.post("/campaigns/{name}/{action}")
    def act(
        request: Request, name: str, action: str, force: Annotated[str | None, Form()] = None
    ) -> Response:
        if action not in ACTIONS:
            return Response(status_code=404)
        _ = console.gettext(request)
        ctx = console.context()
        try:
            status, warnings = _act(ctx, name, action, force=bool(force))
        except UserError as exc:
            flash(request, "error", _("Refused: %(reason)s") % {"reason": str(exc)})
            return back_to(page_of(name))
        flash(
            request,
            "ok",
            _("Campaign %(name)s is now %(status)s.")
            % {"name": name, "status": word(words(_), status)},
        )
        for warning in warnings:
            flash(request, "warning", warning)
        return back_to(page_of(name))

    return routes


def _act(ctx: Context, name: str, action: str, *, force: bool) -> tuple[str, list[str]]:
    """Do `action`; the campaign's status after it, and what `campaigns start` would warn."""
    warnings: list[str | None] = []
    if action == "start":
        started = lifecycle.start_campaign(ctx, name, force=force)
        status = started.status
        warnings.append(started.outlook.warning())
    elif action == "pause":
        status = lifecycle.pause_campaign(ctx.engine, name)
    elif action == "resume":
        status = lifecycle.resume_campaign(ctx, name)
    else:
        status = lifecycle.cancel_campaign(ctx, name)
    if action in ("start", "resume"):
        warnings.append(worker_warning(ctx.settings, ctx.engine))
    return str(status), [w for w in warnings if w]
