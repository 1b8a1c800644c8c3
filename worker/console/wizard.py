"""The new-campaign wizard: audience, template, senders, window, variables; then create.

    GET  /campaigns/new          the form (with `check=1`: also the count and preview, for
                                 browsers without JavaScript)
    GET  /campaigns/new/live     the member count and rendered samples (htmx, as one types)
    POST /campaigns/new          create the draft (`lifecycle.create_campaign`), then its page
                                 shows the plan's verdict and the Start button

The audience is an existing segment, or an expression stored as a new segment when the
campaign is created (removed again if the campaign is refused).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from worker.audience.segments import segment_member_count
from worker.campaigns import lookup
from worker.campaigns.lifecycle import KINDS, CampaignSpec, create_campaign
from worker.campaigns.validate import render_samples
from worker.console.campaign_pages import page_of
from worker.console.web import Console, back_to, flash, guard_for, route_class
from worker.errors import UserError
from worker.pairs import parse_pairs
from worker.runtime import Context
from worker.services.accounts import list_accounts
from worker.services.segments import add_segment, count_where, delete_segment, list_segments

SAMPLES = 3


@dataclass
class Draft:
    """What the wizard's form holds (all text, as typed)."""

    name: str = ""
    segment_mode: str = "existing"  # or "new": `where` becomes a segment named `new_segment`
    segment: str = ""
    where: str = ""
    new_segment: str = ""
    template: str = ""
    accounts: list[str] = field(default_factory=list)
    start: str = ""
    end: str = ""
    tz: str = ""
    kind: str = "marketing"
    cron: str = ""
    variables: str = ""  # KEY=VALUE lines
    skip_unrenderable: bool = False

    def expression(self, ctx: Context) -> str:
        """The audience's expression: typed, or the chosen segment's."""
        if self.segment_mode == "new":
            if not self.where.strip():
                raise UserError("type a segment expression, e.g. tag = python")
            return self.where.strip()
        if not self.segment:
            raise UserError("choose a segment")
        with Session(ctx.engine) as session:
            return lookup.segment_by_name(session, self.segment).expression

    def segment_name(self) -> str:
        if self.segment_mode == "new":
            return (self.new_segment or self.name).strip()
        return self.segment

    def spec(self) -> CampaignSpec:
        return CampaignSpec(
            name=self.name.strip(),
            segment=self.segment_name(),
            template=self.template,
            accounts=list(self.accounts),
            variables=parse_pairs(
                [line for line in self.variables.splitlines() if line.strip()], "variables"
            ),
            start=self.start.strip() or None,
            end=self.end.strip() or None,
            cron=self.cron.strip() or None,
            tz=self.tz.strip() or "Asia/Shanghai",
            kind=self.kind,
            skip_unrenderable=self.skip_unrenderable,
        )


def template_names(templates_dir: Path) -> list[str]:
    """The message templates an operator can choose: `templates/<name>.j2`."""
    if not templates_dir.is_dir():
        return []
    return sorted(p.stem for p in templates_dir.glob("*.j2") if p.is_file())


def member_count(ctx: Context, draft: Draft) -> int:
    """How many contacts the audience selects now; a bad expression raises with its column."""
    expression = draft.expression(ctx)
    if draft.segment_mode == "new":
        return count_where(ctx.engine, expression)["members"]
    return segment_member_count(ctx.engine, expression)


def samples(ctx: Context, draft: Draft) -> list[Any]:
    """The template rendered for the first members, as `campaigns preview` renders it."""
    if not draft.template:
        raise UserError("choose a template")
    spec = draft.spec()
    with Session(ctx.engine, expire_on_commit=False) as session:
        accounts = [lookup.account_by_name(session, name) for name in spec.accounts]
    return render_samples(
        ctx.engine,
        ctx.settings.templates_dir,
        spec.template,
        spec.variables,
        campaign=spec.name or "preview",
        expression=draft.expression(ctx),
        accounts=accounts,
        limit=SAMPLES,
    )


def live_values(ctx: Context, draft: Draft) -> dict[str, Any]:
    """The count and the samples, each with the service layer's message if it fails."""
    out: dict[str, Any] = {"count": None, "count_error": None, "samples": [], "preview_error": None}
    try:
        out["count"] = member_count(ctx, draft)
    except UserError as exc:
        out["count_error"] = str(exc)
    try:
        out["samples"] = samples(ctx, draft)
    except UserError as exc:
        out["preview_error"] = str(exc)
    return out


def create(ctx: Context, draft: Draft) -> None:
    """Store the segment (if typed) and the draft campaign; the segment goes if it fails."""
    spec = draft.spec()
    made_segment = False
    if draft.segment_mode == "new":
        if not spec.name:
            raise UserError("campaign name must not be empty")
        add_segment(ctx.engine, spec.segment, draft.expression(ctx))
        made_segment = True
    try:
        create_campaign(ctx.engine, ctx.settings.templates_dir, spec)
    except UserError:
        if made_segment:
            delete_segment(ctx.engine, spec.segment)
        raise


async def draft_of(request: Request) -> Draft:
    """The wizard's fields from a GET's query or a POST's form."""
    source = await request.form() if request.method == "POST" else request.query_params
    text = {key: value for key, value in source.items() if isinstance(value, str)}
    return Draft(
        **{k: v for k, v in text.items() if k in _TEXT_FIELDS},
        accounts=[a for a in source.getlist("accounts") if isinstance(a, str)],
        skip_unrenderable=bool(text.get("skip_unrenderable")),
    )


_TEXT_FIELDS = {k for k, v in asdict(Draft()).items() if isinstance(v, str)}


def router(console: Console) -> APIRouter:
    routes = APIRouter(route_class=route_class(console), dependencies=[Depends(guard_for(console))])

    def form_values(ctx: Context, draft: Draft) -> dict[str, Any]:
        if not draft.tz:
            draft.tz = ctx.settings.tz
        return {
            "draft": draft,
            "segments": list_segments(ctx.engine),
            "templates": template_names(ctx.settings.templates_dir),
            "accounts": list_accounts(ctx.engine),
            "kinds": KINDS,
            "live": None,
            "error": None,
        }

    @routes.get("/campaigns/new", response_class=HTMLResponse)
    def new(request: Request, draft: Annotated[Draft, Depends(draft_of)]) -> HTMLResponse:
        ctx = console.context()
        values = form_values(ctx, draft)
        if request.query_params.get("check"):
            values["live"] = live_values(ctx, draft)
        return console.render(request, "wizard.html", **values)

    @routes.get("/campaigns/new/live", response_class=HTMLResponse)
    def live(request: Request, draft: Annotated[Draft, Depends(draft_of)]) -> HTMLResponse:
        values = live_values(console.context(), draft)
        return console.render(request, "wizard_live.html", live=values)

    @routes.post("/campaigns/new", response_class=HTMLResponse)
    def make(request: Request, draft: Annotated[Draft, Depends(draft_of)]) -> Response:
        ctx = console.context()
        try:
            create(ctx, draft)
        except UserError as exc:
            values = form_values(ctx, draft)
            values["error"] = str(exc)
            return console.render(request, "wizard.html", 400, **values)
        _ = console.gettext(request)
        flash(request, "ok", _("Draft created. Check the plan below, then start it."))
        return back_to(page_of(draft.name.strip()))

    return routes
