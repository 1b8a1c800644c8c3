"""Turn a contacts CSV into validated rows (see CONTRACT.md, "contacts import CSV").

Only reading and validation; `worker.audience.importer` writes. Whole-file problems raise
`UserError`; a bad row becomes a `RowError` so the caller can refuse the file or skip the row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from worker.audience.csvfile import Malformed, Record, read_records
from worker.errors import UserError

EXTERNAL_ID, NAME, TAGS, OWNER = "external_id", "name", "tags", "owner"
RECOGNISED = frozenset({EXTERNAL_ID, NAME, TAGS, OWNER})


@dataclass(frozen=True, slots=True)
class RowError:
    """Why the row starting on physical `line` was rejected."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ContactRow:
    """One valid contact row, ready to upsert."""

    line: int
    external_id: str
    name: str
    tags: list[str]
    attrs: dict[str, str]
    owner_id: int | None


@dataclass(frozen=True, slots=True)
class Owners:
    """The accounts an `owner` cell may name: those of the import's channel, by name."""

    channel: str
    ids: Mapping[str, int]
    elsewhere: Mapping[str, str]  # account name -> its (other) channel

    def resolve(self, name: str) -> int:
        """The account id for `name`; raises `_Reject` for unknown or foreign accounts."""
        found = self.ids.get(name)
        if found is not None:
            return found
        other = self.elsewhere.get(name)
        if other is not None:
            raise _Reject(
                f"owner {name!r} is an account of channel {other!r}, not {self.channel!r}"
            )
        raise _Reject(f"unknown owner {name!r} (no account has that name)")


class _Reject(Exception):
    """A row-level problem; becomes a `RowError` for the row being parsed."""


def split_tags(cell: str) -> list[str]:
    """`a; b;;a` -> ['a', 'b']: trimmed, empties dropped, duplicates removed, order kept."""
    return list(dict.fromkeys(tag.strip() for tag in cell.split(";") if tag.strip()))


@dataclass(frozen=True, slots=True)
class Header:
    """The column layout of a file: where the recognised columns are, and the attributes."""

    width: int
    positions: Mapping[str, int]
    attributes: tuple[tuple[int, str], ...]

    @classmethod
    def parse(cls, path: Path, record: Record) -> Header:
        """Validate the header row; every problem is a whole-file `UserError`."""
        names = [cell.strip() for cell in record.fields]
        seen: dict[str, int] = {}
        for column, name in enumerate(names, start=1):
            if not name:
                raise UserError(f"{path}: line {record.line}: column {column} has no name")
            if name in seen:
                raise UserError(
                    f"{path}: line {record.line}: column name {name!r} appears twice "
                    f"(columns {seen[name]} and {column})"
                )
            seen[name] = column
        if EXTERNAL_ID not in seen:
            raise UserError(
                f"{path}: the header has no 'external_id' column (found: {', '.join(names)})"
            )
        positions = {name: i for i, name in enumerate(names) if name in RECOGNISED}
        attributes = tuple((i, name) for i, name in enumerate(names) if name not in RECOGNISED)
        return cls(len(names), positions, attributes)

    def cell(self, fields: list[str], column: str) -> str:
        """The trimmed value of a recognised column, '' when the file has no such column."""
        index = self.positions.get(column)
        return "" if index is None else fields[index].strip()


@dataclass(slots=True)
class _RowParser:
    """Validates data rows against the header, remembering where each external_id appeared."""

    header: Header
    owners: Owners
    first_seen: dict[str, int] = field(default_factory=dict)

    def contact(self, record: Record) -> ContactRow:
        """Build the contact of a data row; raises `_Reject` when the row is invalid."""
        fields, header = record.fields, self.header
        if len(fields) != header.width:
            raise _Reject(f"malformed row: expected {header.width} fields, found {len(fields)}")
        external_id = header.cell(fields, EXTERNAL_ID)
        if not external_id:
            raise _Reject("empty external_id")
        first = self.first_seen.setdefault(external_id, record.line)
        if first != record.line:
            raise _Reject(f"external_id {external_id!r} appears again (first on line {first})")
        owner = header.cell(fields, OWNER)
        return ContactRow(
            line=record.line,
            external_id=external_id,
            name=header.cell(fields, NAME),
            tags=split_tags(header.cell(fields, TAGS)),
            attrs={name: fields[i].strip() for i, name in header.attributes if fields[i].strip()},
            owner_id=self.owners.resolve(owner) if owner else None,
        )


def _header(path: Path, records: Iterator[Record | Malformed]) -> Header:
    first = next(records, None)
    if first is None:
        raise UserError(
            f"{path}: no header row (the file is empty); expected one with 'external_id'"
        )
    if isinstance(first, Malformed):
        raise UserError(f"{path}: line {first.line}: the header row is malformed ({first.message})")
    return Header.parse(path, first)


def read_contacts(
    path: Path, owners: Owners, encoding: str | None = None
) -> Iterator[ContactRow | RowError]:
    """Stream the data rows of `path`: a `ContactRow` per valid row, a `RowError` per bad one.

    Raises `UserError` for whole-file problems (missing, undecodable, bad header); `encoding`
    is as for `worker.audience.csvfile.read_records`.
    """
    records = read_records(path, encoding)
    parser = _RowParser(_header(path, records), owners)
    for record in records:
        if isinstance(record, Malformed):
            yield RowError(record.line, record.message)
            continue
        try:
            row: ContactRow | RowError = parser.contact(record)
        except _Reject as exc:
            row = RowError(record.line, str(exc))
        yield row
