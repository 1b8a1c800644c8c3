"""Accounts, contacts (CSV upload) and the human inbox.

GET  /accounts                        state, sent today, current rate, cooldown
GET  /contacts                        how many, and the upload form
POST /contacts                        import a CSV (`import_contacts`, as the CLI does)
GET  /inbox                           conversations waiting for a person
GET  /inbox/{external_id}             the whole thread, each automatic decision explained
POST /inbox/{external_id}/{conversation}   a person's reply (`reply_as_person`)
"""

from __future__ import annotations

import re
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from anyio import to_thread
from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine

from worker.channels.registry import known_channels
from worker.console.dashboard import per_account_minutes
from worker.console.web import Console, back_to, flash, guard_for, route_class
from worker.errors import UserError
from worker.replies.human import reply_as_person, reply_notes
from worker.replies.inbox import inbox, thread
from worker.replies.knowledge import KnowledgeError, load_entries
from worker.replies.model import Entry
from worker.services.accounts import list_accounts
from worker.services.contacts import ImportReport, InvalidRows, count_contacts, import_contacts
from worker.store.models import utcnow

RATE_MINUTES = 5  # "current rate": sends per minute over the last few minutes
UPLOAD_CHUNK = 1 << 20


def current_rates(engine: Engine) -> dict[str, float]:
    """Account name -> messages per minute over the last `RATE_MINUTES` whole minutes."""
    start = (utcnow() - timedelta(minutes=RATE_MINUTES)).replace(second=0, microsecond=0)
    return {
        name: sum(minutes.values()) / RATE_MINUTES
        for name, minutes in per_account_minutes(engine, start).items()
    }


def knowledge_by_source(templates_dir: Path) -> dict[str, Entry]:
    """The reply assistant's knowledge entries by `source` (`knowledge/prices.md:12`)."""
    try:
        entries = load_entries(templates_dir / "replies" / "knowledge")
    except KnowledgeError:
        return {}
    return {entry.source: entry for entry in entries}


def safe_filename(name: str | None) -> str:
    """The upload's own file name (messages name it), without any directory part."""
    base = re.split(r"[\\/]", name or "")[-1].strip()
    return re.sub(r"[^\w.\- ]", "_", base) or "upload.csv"


def router(console: Console) -> APIRouter:
    routes = APIRouter(route_class=route_class(console), dependencies=[Depends(guard_for(console))])

    @routes.get("/accounts", response_class=HTMLResponse)
    def accounts(request: Request) -> HTMLResponse:
        engine = console.context().engine
        rows = list_accounts(engine)
        rates = current_rates(engine)
        return console.render(
            request, "accounts.html", accounts=rows, rates=rates, rate_minutes=RATE_MINUTES
        )

    def contacts_page(request: Request, status_code: int = 200, **values: Any) -> HTMLResponse:
        page: dict[str, Any] = {
            "report": None,
            "error": None,
            "rejected": [],
            "form": {},
            "filename": "",
        }
        page.update(values)
        return console.render(
            request,
            "contacts.html",
            status_code,
            total=count_contacts(console.context().engine),
            channels=sorted(known_channels()),
            **page,
        )

    @routes.get("/contacts", response_class=HTMLResponse)
    def contacts(request: Request) -> HTMLResponse:
        return contacts_page(request)

    @routes.post("/contacts", response_class=HTMLResponse)
    async def upload(
        request: Request,
        file: Annotated[UploadFile, File()],
        channel: Annotated[str, Form()] = "mock",
        encoding: Annotated[str, Form()] = "",
        skip_invalid: Annotated[str | None, Form()] = None,
        dry_run: Annotated[str | None, Form()] = None,
    ) -> HTMLResponse:
        form = {"channel": channel, "encoding": encoding, "skip_invalid": bool(skip_invalid),
                "dry_run": bool(dry_run)}  # fmt: skip
        name = safe_filename(file.filename)
        with tempfile.TemporaryDirectory(prefix="siyu-upload-") as directory:
            path = Path(directory) / name
            with path.open("wb") as out:
                while chunk := await file.read(UPLOAD_CHUNK):
                    out.write(chunk)
            try:
                report = await _in_thread(
                    console, path, channel, encoding or None, bool(skip_invalid), bool(dry_run)
                )
            except InvalidRows as exc:
                error = str(exc).replace(str(path), name)  # the upload's name, not our temp path
                values = {"error": error, "rejected": exc.report.rejected, "form": form}
                return contacts_page(request, 400, filename=name, **values)
            except UserError as exc:
                error = str(exc).replace(str(path), name)
                return contacts_page(request, 400, error=error, form=form, filename=name)
        return contacts_page(
            request, report=report, rejected=report.rejected, form=form, filename=name
        )

    @routes.get("/inbox", response_class=HTMLResponse)
    def waiting(request: Request) -> HTMLResponse:
        return console.render(request, "inbox.html", waiting=inbox(console.context().engine))

    @routes.get("/inbox/{external_id}", response_class=HTMLResponse)
    def conversation(request: Request, external_id: str) -> HTMLResponse:
        ctx = console.context()
        return console.render(
            request,
            "conversation.html",
            external_id=external_id,
            conversations=thread(ctx.engine, external_id),
            knowledge=knowledge_by_source(ctx.settings.templates_dir),
        )

    @routes.post("/inbox/{external_id}/{conversation_id}")
    def reply(
        request: Request, external_id: str, conversation_id: int, text: Annotated[str, Form()] = ""
    ) -> Response:
        _ = console.gettext(request)
        target = "/inbox/" + quote(external_id, safe="")
        try:
            sent = reply_as_person(console.context(), str(conversation_id), text)
        except UserError as exc:
            flash(request, "error", _("Refused: %(reason)s") % {"reason": str(exc)})
            return back_to(target)
        flash(request, "ok", _("Your reply to %(contact)s is queued.") % {"contact": sent.contact})
        for note in reply_notes(sent):
            flash(request, "warning", note)
        return back_to(target)

    return routes


async def _in_thread(
    console: Console, path: Path, channel: str, encoding: str | None, skip: bool, dry: bool
) -> ImportReport:
    """`import_contacts` off the event loop (a large file takes seconds)."""
    engine = console.context().engine

    def run() -> ImportReport:
        return import_contacts(
            engine, path, channel, encoding=encoding, skip_invalid=skip, dry_run=dry
        )

    return await to_thread.run_sync(run)
