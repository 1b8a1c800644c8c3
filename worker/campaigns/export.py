"""The per-recipient log for people: rows for a table, CSV for a spreadsheet.

`campaigns deliveries` (table and `--csv`) uses it, and so can an HTTP download: everything
is streamed, so a run of a million deliveries needs no more memory than one of ten. `sent_at`
is local time in the campaign's zone, with its offset, to the second (`timeparse.local_iso`
here, `local_text` in a table for people).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from worker.campaigns.status import check_delivery_state, delivery_rows, latest_run_of
from worker.campaigns.timeparse import Instant, local_iso, zone

COLUMNS = ("external_id", "name", "account", "state", "reason", "last_error", "attempts", "sent_at")
BOM = "\ufeff"  # Excel reads a CSV as UTF-8 only when it starts with one

LogRow = tuple[str, ...]
TimeFormat = Callable[[Instant, ZoneInfo], str]


def delivery_log(
    engine: Engine,
    name: str,
    state: str | None = None,
    limit: int | None = None,
    *,
    when: TimeFormat = local_iso,
    account: str | None = None,
    search: str | None = None,
) -> Iterator[LogRow]:
    """The latest run's deliveries as `COLUMNS` strings, in id order, streamed; `sent_at`
    spelled by `when` in the campaign's zone; `account` and `search` filter as in
    `status.delivery_rows`.

    An unknown campaign or state raises here, before the first row: nothing half-written.
    """
    check_delivery_state(state)
    campaign, run = latest_run_of(engine, name)
    if run is None or run.id is None:
        return iter(())
    rows = delivery_rows(engine, run.id, state, limit, account=account, search=search)
    return _rows(rows, zone(campaign.tz), when)


def delivery_csv(
    engine: Engine,
    name: str,
    state: str | None = None,
    limit: int | None = None,
    *,
    account: str | None = None,
    search: str | None = None,
) -> Iterator[str]:
    """`delivery_log` as CSV text: a BOM and the header, then one line per delivery.

    Encode it as UTF-8 (the BOM is text here so a text stream or an HTTP body can carry it).
    """
    return _csv_lines(delivery_log(engine, name, state, limit, account=account, search=search))


def _rows(items: Iterator[dict[str, Any]], tz: ZoneInfo, when: TimeFormat) -> Iterator[LogRow]:
    for item in items:
        yield (
            item["external_id"],
            item["name"],
            item["account"] or "",
            item["status"],
            item["reason"] or "",
            item["last_error"] or "",
            str(item["attempts"]),
            when(item["sent_at"], tz),
        )


class _LastLine:
    """A file-like target for `csv.writer` that keeps only what was written last."""

    text = ""

    def write(self, text: str) -> int:
        self.text = text
        return len(text)


def _csv_lines(rows: Iterator[LogRow]) -> Iterator[str]:
    line = _LastLine()
    writer = csv.writer(line)  # Excel's dialect: ',' and '\r\n', quotes only where needed
    writer.writerow(COLUMNS)
    yield BOM + line.text
    for row in rows:
        writer.writerow(row)
        yield line.text
