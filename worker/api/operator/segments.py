"""`/v1/segments`: named audience expressions and their member counts (`siyu segments`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from worker.api.operator.base import Operator, new_router
from worker.api.operator.errors import NAMED, STATEFUL
from worker.api.operator.schemas import Segment, SegmentCount, SegmentCreate, SegmentCreated
from worker.services import segments as svc


def router(ops: Operator) -> APIRouter:
    """The segment routes over `ops`."""
    api = new_router("segments")

    @api.get("/segments", response_model=list[Segment])
    def segments() -> list[Any]:
        """Every segment with its expression and current member count."""
        return list(svc.list_segments(ops.engine))

    # Declared before /segments/{name}: a segment named "count" is shown by the list.
    @api.get("/segments/count", response_model=SegmentCount)
    def count(
        where: Annotated[str, Query(description="An expression, e.g. tag = vip")],
        allow_unknown: bool = False,
    ) -> Any:
        """How many contacts an expression selects now, without saving it (checked as
        `segments add` checks it: a syntax error names its column)."""
        return svc.count_where(ops.engine, where, allow_unknown=allow_unknown)

    @api.post("/segments", response_model=SegmentCreated, status_code=201, responses=STATEFUL)
    def create(body: SegmentCreate) -> dict[str, Any]:
        """Define a segment; an unknown field or value is refused unless `allow_unknown`."""
        segment, notes = svc.add_segment(
            ops.engine, body.name, body.where, allow_unknown=body.allow_unknown
        )
        return {**svc.show_segment(ops.engine, segment.name), "notes": notes}

    @api.get("/segments/{name}", response_model=Segment, responses=NAMED)
    def show(name: str) -> Any:
        """The expression and the current member count."""
        return svc.show_segment(ops.engine, name)

    @api.delete("/segments/{name}", status_code=204, response_class=Response, responses=STATEFUL)
    def delete(name: str) -> Response:
        """Delete a segment no campaign uses (409 naming the campaigns that do)."""
        svc.delete_segment(ops.engine, name)
        return Response(status_code=204)

    return api
