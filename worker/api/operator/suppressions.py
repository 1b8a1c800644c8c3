"""`/v1/suppressions`: contacts that must not be messaged again (`siyu contacts suppress`,
`unsuppress`, `suppressions`). Every change is committed before the answer: the lanes'
last look before each send sees it at once."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query

from worker.api.operator.base import Operator, new_router
from worker.api.operator.errors import STATEFUL
from worker.api.operator.schemas import Suppressed, Suppression, SuppressRequest, Unsuppressed
from worker.services import suppressions as svc

MAX_LISTED = 10_000


def router(ops: Operator) -> APIRouter:
    """The suppression routes over `ops`."""
    api = new_router("suppressions")

    @api.get("/suppressions", response_model=list[Suppression])
    def suppressions(
        limit: Annotated[int | None, Query(ge=1, le=MAX_LISTED, description="The latest N")] = None,
    ) -> list[Any]:
        """Suppressed contacts with their reason and time (UTC), oldest first."""
        return list(svc.list_suppressions(ops.engine, limit=limit))

    @api.post("/suppressions", response_model=Suppressed, responses=STATEFUL)
    def suppress(body: SuppressRequest) -> dict[str, Any]:
        """Suppress contacts by external_id (on `channel`, else on every channel)."""
        report = svc.suppress_contacts(
            ops.engine, body.external_ids, channel=body.channel, reason=body.reason
        )
        return asdict(report)

    @api.delete("/suppressions/{external_id}", response_model=Unsuppressed, responses=STATEFUL)
    def unsuppress(
        external_id: str,
        channel: Annotated[str | None, Query(description="Only this channel's contact")] = None,
    ) -> dict[str, Any]:
        """Message this contact again; `not_suppressed` says when it was not suppressed."""
        return asdict(svc.unsuppress_contacts(ops.engine, [external_id], channel=channel))

    return api
