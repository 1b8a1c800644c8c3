"""`/v1/contacts`: CSV upload (`siyu contacts import`) and listing (`siyu contacts list`).

The upload is written to a private temporary file and imported from there exactly as the CLI
imports a file: the same validation, the same line numbers; messages name the uploaded
file's own name. A refused file (no `skip_invalid`) is 400 with every bad row in `rejected`,
and nothing is imported.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse

from worker.api.operator.base import Operator, new_router
from worker.api.operator.errors import NAMED, STATEFUL, error_response, status_of
from worker.api.operator.schemas import Contacts, ImportReport
from worker.errors import UserError
from worker.services.contacts import InvalidRows, count_contacts, import_contacts, list_contacts

MAX_LISTED = 1000


def router(ops: Operator) -> APIRouter:
    """The contact routes over `ops`."""
    api = new_router("contacts")

    @api.post("/contacts/import", response_model=ImportReport, responses=STATEFUL)
    def upload(
        file: Annotated[UploadFile, File(description="CSV with an external_id column")],
        channel: Annotated[str, Form()] = "mock",
        encoding: Annotated[str | None, Form(description="e.g. gb18030; default UTF-8")] = None,
        skip_invalid: Annotated[bool, Form()] = False,
        dry_run: Annotated[bool, Form()] = False,
    ) -> Any:
        """Upsert contacts from a CSV (by channel + external_id), all or nothing unless
        `skip_invalid`; `dry_run` validates and counts, and writes nothing."""
        label = PurePath(file.filename or "upload.csv").name or "upload.csv"
        with tempfile.TemporaryDirectory(prefix="siyu-upload-") as tmp:
            path = Path(tmp) / "upload.csv"
            with path.open("wb") as saved:
                shutil.copyfileobj(file.file, saved)
            options = {"skip_invalid": skip_invalid, "dry_run": dry_run}
            try:
                report = import_contacts(
                    ops.engine, path, channel, encoding=encoding or None, **options
                )
            except UserError as exc:
                return _refused(exc, str(path), label)
        rejected = [{"line": e.line, "message": e.message} for e in report.rejected]
        return {
            "file": label,
            "channel": channel,
            "dry_run": dry_run,
            "rows": report.rows,
            "created": report.created,
            "updated": report.updated,
            "rejected": rejected,
        }

    @api.get("/contacts", response_model=Contacts, responses=NAMED)
    def contacts(
        segment: Annotated[str | None, Query(description="Only this segment's members")] = None,
        channel: Annotated[str | None, Query(description="Only this channel's")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 50,
    ) -> dict[str, Any]:
        """The first `limit` matching contacts in import order, and how many match."""
        items = list_contacts(ops.engine, segment=segment, channel=channel, limit=limit)
        total = count_contacts(ops.engine, segment=segment, channel=channel)
        return {"total": total, "items": items}

    return api


def _refused(exc: UserError, path: str, label: str) -> JSONResponse:
    """The CLI's message, naming the uploaded file instead of the temporary one."""
    message = str(exc).replace(path, label)
    if isinstance(exc, InvalidRows):
        rejected = [{"line": e.line, "message": e.message} for e in exc.report.rejected]
        return error_response(400, message, rejected=rejected)
    return error_response(status_of(exc), message)
