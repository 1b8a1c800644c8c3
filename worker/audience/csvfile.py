"""Stream a UTF-8 CSV file as records tagged with the physical line each one starts on.

Lines are decoded one at a time and strictly, so an undecodable byte is reported on its own
line; `csv.reader.line_num` counts physical lines, so a quoted field spanning several lines
never shifts the numbers of the records after it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from worker.errors import UserError

UTF8_BOM = b"\xef\xbb\xbf"

# The csv module's wording, rephrased for an operator fixing a spreadsheet export.
_CSV_MESSAGES = {
    "unexpected end of data": "a quoted field is never closed (missing '\"')",
    "',' expected after '\"'": "text follows a closing '\"'; quote the whole field and "
    "double every '\"' inside it",
}


@dataclass(frozen=True, slots=True)
class Record:
    """One CSV record; `line` is the physical line it starts on (the header is line 1)."""

    line: int
    fields: list[str]


@dataclass(frozen=True, slots=True)
class Malformed:
    """A record the csv module could not parse, with the reason."""

    line: int
    message: str


def _decoded_lines(raw_lines: Iterable[bytes], path: Path) -> Iterator[str]:
    """Decode each line strictly; the first bad byte names its line and offset."""
    for number, raw in enumerate(raw_lines, start=1):
        if number == 1 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{path}: line {number} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                f"byte {exc.start + 1} of the line); save the file as UTF-8"
            ) from exc


def _csv_message(exc: csv.Error) -> str:
    text = str(exc)
    return "malformed row: " + _CSV_MESSAGES.get(text, text)


def _records(lines: Iterator[str]) -> Iterator[Record | Malformed]:
    reader = csv.reader(lines, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Malformed(start, _csv_message(exc))
            continue
        if any(field.strip() for field in fields):  # blank lines carry no contact
            yield Record(start, fields)


def read_records(path: Path) -> Iterator[Record | Malformed]:
    """Every non-blank record of `path`, header first; a file that can't be read is a UserError."""
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such file") from exc
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file ({exc.strerror})") from exc
    with handle:
        yield from _records(_decoded_lines(handle, path))
