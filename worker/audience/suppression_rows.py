"""Read a suppression CSV: `external_id`, optional `channel` and `reason` columns.

Only reading and validation, like `worker.audience.rows` for contacts; the service
(`worker.services.suppressions`) resolves the ids and writes. A bad row becomes a message with
its line so the caller can refuse the file naming every problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from worker.audience.csvfile import Malformed, Record, read_records
from worker.audience.rows import EXTERNAL_ID, Header
from worker.channels.registry import known_channels
from worker.errors import UserError

CHANNEL, REASON = "channel", "reason"


@dataclass(frozen=True, slots=True)
class Request:
    """One id to suppress; `channel` None means every channel, `reason` None the default."""

    external_id: str
    channel: str | None = None
    reason: str | None = None
    line: int | None = None  # the file line it came from


def read_requests(
    path: Path, channel: str | None, reason: str | None
) -> tuple[list[Request], list[tuple[int, str]]]:
    """The file's requests, and (line, message) for every row that can't become one.

    Whole-file problems (missing, not UTF-8, no header or no external_id column) raise
    `UserError`. A cell overrides `channel` / `reason`; they fill empty cells and missing columns.
    """
    records = read_records(path)
    layout = _Layout.of(path, records, channel, reason)
    requests: list[Request] = []
    problems: list[tuple[int, str]] = []
    for record in records:
        row = layout.request(record)
        if isinstance(row, Request):
            requests.append(row)
        else:
            problems.append((record.line, row))
    return requests, problems


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where a file's columns are, and what fills its empty channel and reason cells."""

    header: Header
    channel_at: int | None
    reason_at: int | None
    channel: str | None
    reason: str | None
    known: list[str]

    @classmethod
    def of(
        cls,
        path: Path,
        records: Iterator[Record | Malformed],
        channel: str | None,
        reason: str | None,
    ) -> _Layout:
        first = next(records, None)
        if first is None:
            raise UserError(f"{path}: no header row (the file is empty); expected 'external_id'")
        if isinstance(first, Malformed):
            raise UserError(
                f"{path}: line {first.line}: the header row is malformed ({first.message})"
            )
        header = Header.parse(path, first)  # channel and reason are "attributes" to it
        columns = {name: index for index, name in header.attributes}
        known = sorted(known_channels())
        return cls(header, columns.get(CHANNEL), columns.get(REASON), channel, reason, known)

    def request(self, record: Record | Malformed) -> Request | str:
        """The row's request, or why it can't be one."""
        if isinstance(record, Malformed):
            return record.message
        fields, width = record.fields, self.header.width
        if len(fields) != width:
            return f"malformed row: expected {width} fields, found {len(fields)}"
        external_id = self.header.cell(fields, EXTERNAL_ID)
        channel = self._cell(fields, self.channel_at) or self.channel
        if not external_id:
            return "empty external_id"
        if channel is not None and channel not in self.known:
            return f"unknown channel {channel!r} (known: {', '.join(self.known)})"
        return Request(
            external_id, channel, self._cell(fields, self.reason_at) or self.reason, record.line
        )

    @staticmethod
    def _cell(fields: list[str], index: int | None) -> str:
        return "" if index is None else fields[index].strip()
