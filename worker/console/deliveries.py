"""One page of a campaign's per-recipient log: state filter, search, keyset pagination.

The rows come from `campaigns.status.delivery_rows` (the CLI's and the API's log), paged by
`id > after`, never OFFSET, so the thousandth page costs what the first does. Going back is
the browser's Back or the first page: a keyset only runs forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from worker.campaigns.status import check_delivery_state, delivery_rows

PAGE_ROWS = 50


@dataclass(frozen=True)
class LogPage:
    rows: list[dict[str, Any]]
    last_id: int | None  # the cursor of the next page
    has_after: bool
    is_first: bool


def log_page(
    engine: Engine,
    run_id: int,
    *,
    state: str | None = None,
    search: str | None = None,
    after: int | None = None,
    limit: int = PAGE_ROWS,
) -> LogPage:
    """Up to `limit` deliveries of `run_id` in id order after the delivery id `after`."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    check_delivery_state(state)
    found = list(
        delivery_rows(
            engine,
            run_id,
            state,
            limit + 1,
            search=(search or "").strip() or None,
            after=after,
            with_id=True,
        )
    )
    rows = found[:limit]
    return LogPage(
        rows=rows,
        last_id=rows[-1]["id"] if rows else None,
        has_after=len(found) > limit,
        is_first=after is None,
    )
