"""One page of a campaign's per-recipient log (the operator API, the console): keyset paging.

A page ends with an opaque cursor naming the run and the last delivery id it holds; the next
page starts strictly after that id, so the millionth row costs what the first does (never an
OFFSET), and the walk stays on its run even if a recurring campaign opens another meanwhile.
Rows that change state while the pages are read (a campaign sending) are never seen twice;
one that leaves a `state` filter before its page is read is not seen, as the filter asks.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from worker.campaigns.status import check_delivery_state, delivery_rows, latest_run_of
from worker.campaigns.timeparse import iso_utc
from worker.errors import UserError
from worker.store import tables

R = tables.campaign_runs.c
MAX_PAGE = 1000


@dataclass(frozen=True)
class DeliveryFilter:
    """Which rows of the log: a delivery state, a sender account, a search over the
    contact's external_id and name (case-insensitive substring)."""

    state: str | None = None
    account: str | None = None
    search: str | None = None


@dataclass(frozen=True)
class DeliveryPage:
    """Rows as `campaigns deliveries --json` gives them; `next` is None on the last page."""

    run: int | None
    items: list[dict[str, Any]]
    next: str | None


def delivery_page(
    engine: Engine,
    name: str,
    where: DeliveryFilter = DeliveryFilter(),
    *,
    limit: int = 100,
    cursor: str | None = None,
) -> DeliveryPage:
    """The first `limit` matching rows of the latest run, or those after `cursor`'s row."""
    if not 1 <= limit <= MAX_PAGE:
        raise UserError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    check_delivery_state(where.state)
    campaign, run = latest_run_of(engine, name)
    after = None
    run_id = run.id if run is not None else None
    if cursor is not None:
        run_id, after = read_cursor(cursor)
        _check_run_of(engine, run_id, campaign.id, name)
    if run_id is None:
        return DeliveryPage(None, [], None)
    rows = list(
        delivery_rows(
            engine,
            run_id,
            where.state,
            limit + 1,
            account=where.account,
            search=where.search,
            after=after,
            with_id=True,
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    following = make_cursor(run_id, rows[-1]["id"]) if more else None
    return DeliveryPage(run_id, [_item(row) for row in rows], following)


def make_cursor(run_id: int, delivery_id: int) -> str:
    """An opaque token for "after delivery `delivery_id` of run `run_id`"."""
    return base64.urlsafe_b64encode(f"{run_id}.{delivery_id}".encode()).decode().rstrip("=")


def read_cursor(cursor: str) -> tuple[int, int]:
    """(run id, delivery id) of a `make_cursor` token; anything else is a UserError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        run_id, delivery_id = (int(part) for part in raw.split("."))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise UserError(
            f"after: {cursor!r} is not a cursor; pass the `next` of the previous page"
        ) from exc
    return run_id, delivery_id


def _check_run_of(engine: Engine, run_id: int, campaign_id: int | None, name: str) -> None:
    with engine.connect() as conn:
        owner = conn.execute(select(R.campaign_id).where(R.id == run_id)).scalar_one_or_none()
    if owner is None or owner != campaign_id:
        raise UserError(f"after: the cursor belongs to another campaign than {name!r}")


def _item(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("id")
    row["updated_at"] = iso_utc(row["updated_at"])
    row["sent_at"] = iso_utc(row["sent_at"])
    return row
