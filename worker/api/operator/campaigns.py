"""`/v1/campaigns`: define, inspect and run campaigns, as `siyu campaigns ...` does.

The per-recipient log (`.../deliveries`, `.../deliveries.csv`) is `api.operator.deliveries`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from worker.api.operator.base import Operator, new_router
from worker.api.operator.campaign_schemas import (
    CampaignCreate,
    CampaignDetail,
    CampaignEdit,
    CampaignPlan,
    CampaignStatus,
    CampaignSummary,
    PreviewMessage,
    Transition,
)
from worker.api.operator.errors import NAMED, STATEFUL
from worker.campaigns import lifecycle
from worker.campaigns.manage import CampaignChanges, delete_campaign, edit_campaign
from worker.campaigns.outlook import verdict
from worker.campaigns.overview import list_campaigns, show_campaign
from worker.campaigns.plan import plan_campaign
from worker.campaigns.preview import preview_campaign
from worker.campaigns.status import campaign_status
from worker.errors import UserError
from worker.services.doctor import worker_warning


def router(ops: Operator) -> APIRouter:
    """The campaign routes over `ops`."""
    api = new_router("campaigns")
    _definitions(api, ops)
    _inspection(api, ops)
    _transitions(api, ops)
    return api


def _definitions(api: APIRouter, ops: Operator) -> None:
    """List, create, show, edit and delete."""

    @api.get("/campaigns", response_model=list[CampaignSummary])
    def campaigns() -> list[dict[str, Any]]:
        """Every campaign: status, progress of its latest run, window (`campaigns list`)."""
        return list_campaigns(ops.engine)

    @api.post("/campaigns", response_model=CampaignDetail, status_code=201, responses=STATEFUL)
    def create(body: CampaignCreate) -> dict[str, Any]:
        """Create a draft; the template is rendered for every member first."""
        spec = lifecycle.CampaignSpec(
            name=body.name,
            segment=body.segment,
            template=body.template,
            accounts=[a.strip() for a in body.accounts if a.strip()],
            variables=dict(body.vars),
            start=body.start,
            end=body.end,
            cron=body.cron,
            tz=body.tz,
            kind=body.kind,
            skip_unrenderable=body.skip_unrenderable,
        )
        lifecycle.create_campaign(ops.engine, ops.settings.templates_dir, spec)
        return show_campaign(ops.engine, body.name)

    @api.get("/campaigns/{name}", response_model=CampaignDetail, responses=NAMED)
    def show(name: str) -> dict[str, Any]:
        """The whole definition and its runs (`campaigns show`)."""
        return show_campaign(ops.engine, name)

    @api.patch("/campaigns/{name}", response_model=CampaignDetail, responses=STATEFUL)
    def edit(name: str, body: CampaignEdit) -> dict[str, Any]:
        """Change a draft or a scheduled campaign that has not begun (`campaigns edit`)."""
        changes = CampaignChanges(
            segment=body.segment,
            template=body.template,
            accounts=None
            if body.accounts is None
            else [a.strip() for a in body.accounts if a.strip()],
            set_vars=dict(body.vars),
            unset_vars=[key.strip() for key in body.unset_vars],
            start=body.start,
            end=body.end,
            cron=body.cron,
            tz=body.tz,
            kind=body.kind,
            skip_unrenderable=body.skip_unrenderable,
        )
        if changes == CampaignChanges():
            raise UserError("nothing to change; give at least one field")
        edit_campaign(ops.engine, ops.settings.templates_dir, name, changes)
        return show_campaign(ops.engine, name)

    @api.delete("/campaigns/{name}", status_code=204, response_class=Response, responses=STATEFUL)
    def delete(name: str) -> Response:
        """Delete a draft (anything started is kept for its history: cancel it)."""
        delete_campaign(ops.engine, name)
        return Response(status_code=204)


def _inspection(api: APIRouter, ops: Operator) -> None:
    """Preview, plan and status: nothing changes."""

    @api.get("/campaigns/{name}/preview", response_model=list[PreviewMessage], responses=NAMED)
    def preview(name: str, limit: Annotated[int, Query(ge=1, le=1000)] = 5) -> list[dict[str, Any]]:
        """Messages exactly as they would be sent to sample members; nothing is sent."""
        found = preview_campaign(ops.engine, ops.settings.templates_dir, name, limit)
        return [
            {"external_id": m.external_id, "name": m.name, "account": m.account, "text": m.text}
            for m in found
        ]

    @api.get("/campaigns/{name}/plan", response_model=CampaignPlan, responses=NAMED)
    def plan(name: str) -> dict[str, Any]:
        """Capacity per account inside the window, whether it fits, the ETA, the verdict."""
        settings = ops.settings
        doc = plan_campaign(ops.engine, settings.rate_limits_dir, name, settings.limit_margin_ms)
        return {**doc, "verdict": verdict(doc)}

    @api.get("/campaigns/{name}/status", response_model=CampaignStatus, responses=NAMED)
    def status(name: str) -> dict[str, Any]:
        """Counts per state and per account, the window, the ETA (`campaigns status --json`)."""
        return campaign_status(ops.engine, name)


def _transitions(api: APIRouter, ops: Operator) -> None:
    """Start, pause, resume, cancel: each a compare-and-set on the campaign's status."""

    @api.post("/campaigns/{name}/start", response_model=Transition, responses=STATEFUL)
    def start(name: str, force: bool = False) -> Transition:
        """Start now or at the campaign's start time, after rendering every member again.

        Refused (409) when the plan says nothing can be sent before the end, unless `force`;
        `warnings` say how many members will not be sent and why, or that no worker runs.
        """
        ctx = ops.context()
        started = lifecycle.start_campaign(ctx, name, force=force)
        warnings = [started.outlook.warning(), worker_warning(ctx.settings, ctx.engine)]
        return Transition(
            name=name,
            status=started.status,
            message=f"campaign {name} is {started.status}",
            warnings=[w for w in warnings if w],
        )

    @api.post("/campaigns/{name}/pause", response_model=Transition, responses=STATEFUL)
    def pause(name: str) -> Transition:
        """Pause a running campaign; nothing more is sent until it is resumed."""
        status = lifecycle.pause_campaign(ops.engine, name)
        return Transition(name=name, status=status, message=f"campaign {name} paused")

    @api.post("/campaigns/{name}/resume", response_model=Transition, responses=STATEFUL)
    def resume(name: str) -> Transition:
        """Resume where it stopped; no one is messaged twice."""
        status = lifecycle.resume_campaign(ops.context(), name)
        return Transition(name=name, status=status, message=f"campaign {name} is {status}")

    @api.post("/campaigns/{name}/cancel", response_model=Transition, responses=STATEFUL)
    def cancel(name: str) -> Transition:
        """Cancel for good; unsent deliveries are skipped (cancelled)."""
        status = lifecycle.cancel_campaign(ops.context(), name)
        message = f"campaign {name} cancelled; unsent deliveries are skipped (cancelled)"
        return Transition(name=name, status=status, message=message)
