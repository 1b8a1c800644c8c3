"""`/v1/campaigns/{name}/deliveries`: the per-recipient log, a page at a time or as CSV.

Pages are keyset-paginated (`campaigns.pages`): `next` is an opaque cursor to pass back as
`after`; `next_url` is the following page with the same filters. The CSV is streamed row by
row, exactly what `siyu campaigns deliveries --csv` prints (UTF-8 with a BOM for Excel).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from worker.api.operator.base import Operator, new_router
from worker.api.operator.campaign_schemas import DeliveryPage
from worker.api.operator.errors import NAMED
from worker.campaigns.export import delivery_csv
from worker.campaigns.pages import MAX_PAGE, DeliveryFilter, delivery_page

State = Annotated[
    str | None, Query(description="Only this state (pending, sent, failed, skipped, ...)")
]
Account = Annotated[str | None, Query(description="Only rows of this sender account")]
Search = Annotated[
    str | None,
    Query(alias="q", description="Contact external_id or name contains this (any case)"),
]


def router(ops: Operator) -> APIRouter:
    """The log routes over `ops`."""
    api = new_router("campaigns")

    @api.get("/campaigns/{name}/deliveries", response_model=DeliveryPage, responses=NAMED)
    def deliveries(
        request: Request,
        name: str,
        state: State = None,
        account: Account = None,
        search: Search = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        after: Annotated[str | None, Query(description="`next` of the previous page")] = None,
    ) -> DeliveryPage:
        """A page of the latest run's log in delivery order, filtered; times in UTC."""
        where = DeliveryFilter(state=state, account=account, search=search or None)
        page = delivery_page(ops.engine, name, where, limit=limit, cursor=after)
        following = None
        if page.next is not None:
            following = str(request.url.include_query_params(after=page.next))
        return DeliveryPage.model_validate(
            {"run": page.run, "items": page.items, "next": page.next, "next_url": following}
        )

    @api.get(
        "/campaigns/{name}/deliveries.csv",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}}, "description": "The log as CSV"}},
    )
    def deliveries_csv(
        name: str, state: State = None, account: Account = None, search: Search = None
    ) -> StreamingResponse:
        """The latest run's log as CSV: external_id, name, account, state, reason,
        last_error, attempts, sent_at (the campaign's local time with its offset)."""
        lines = delivery_csv(ops.engine, name, state, account=account, search=search or None)
        disposition = f"attachment; filename*=UTF-8''{quote(name, safe='')}-deliveries.csv"
        return StreamingResponse(
            lines,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
        )

    return api
