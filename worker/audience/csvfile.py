"""Stream a CSV file as records tagged with the physical line each one starts on.

The bytes are decoded incrementally in blocks (constant memory, any text codec, UTF-8 unless
the caller names another) and cut into lines after decoding, so the first undecodable byte is
reported with its line; `csv.reader.line_num` counts those physical lines, so a quoted field
spanning several lines never shifts the numbers of the records after it. A leading byte-order
mark is dropped.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from worker.errors import UserError

UTF8_BOM = b"\xef\xbb\xbf"
UTF8_NAMES = frozenset({"utf-8", "utf-8-sig"})
BOM = "\ufeff"
BLOCK_BYTES = 64 * 1024
SNIPPET_CHARS = 20  # decoded text shown before an undecodable byte
COMMON_ENCODINGS = "utf-8, gb18030 (reads GBK and GB2312 too), big5, shift_jis, utf-16, latin-1"

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


class Undecodable(UserError):
    """Bytes the file's encoding cannot decode, on physical line `line`.

    `fact` says what and where without advice, for callers that know which option to suggest.
    """

    def __init__(self, path: Path, encoding: str, line: int, bad: bytes, before: str) -> None:
        self.path, self.encoding, self.line = path, encoding, line
        shown = " ".join(f"0x{byte:02x}" for byte in bad)
        where = f"after {before[-SNIPPET_CHARS:]!r}" if before else "at the start of the line"
        self.fact = (
            f"{path}: line {line} is not valid {_label(encoding)} "
            f"(cannot decode {'byte' if len(bad) == 1 else 'bytes'} {shown} {where})"
        )
        super().__init__(f"{self.fact}; save the file as UTF-8")


def _label(encoding: str) -> str:
    return "UTF-8" if encoding in UTF8_NAMES else encoding


def check_encoding(name: str) -> str:
    """The codec's canonical name; an unknown or non-text codec is a `UserError`."""
    try:
        "\n".encode(name)  # LookupError too for bytes-to-bytes codecs such as base64
    except LookupError as exc:
        raise UserError(
            f"--encoding: {name!r} is not a known text encoding; common ones: {COMMON_ENCODINGS} "
            "(any Python codec name works)"
        ) from exc
    return codecs.lookup(name).name


class _LineDecoder:
    """Decode blocks of bytes incrementally into lines that end in '\n', counting them."""

    def __init__(self, path: Path, encoding: str) -> None:
        self.path, self.encoding = path, encoding
        self._decoder = codecs.getincrementaldecoder(encoding)()
        self._line = 1  # the physical line `_partial` is on
        self._partial = ""  # decoded text after the last newline
        self._at_start = True

    def lines(self, blocks: Iterable[bytes]) -> Iterator[str]:
        for block in blocks:
            yield from self._split(self._decode(block, final=False))
        yield from self._split(self._decode(b"", final=True))
        if self._partial:
            yield self._partial

    def _decode(self, block: bytes, *, final: bool) -> str:
        state = self._decoder.getstate()
        try:
            text = self._decoder.decode(block, final)
        except UnicodeDecodeError as exc:
            raise self._locate(state, block, exc, final=final) from exc
        if self._at_start and text:
            self._at_start = False
            text = text.removeprefix(BOM)
        return text

    def _split(self, text: str) -> Iterator[str]:
        *complete, self._partial = (self._partial + text).split("\n")
        for piece in complete:
            self._line += 1
            yield piece + "\n"

    def _locate(
        self, state: tuple[bytes, int], block: bytes, error: UnicodeDecodeError, *, final: bool
    ) -> Undecodable:
        """Replay the failing block byte by byte from `state` to find the bad byte's line."""
        decoder = codecs.getincrementaldecoder(self.encoding)()
        decoder.setstate(state)
        line, before = self._line, self._partial[-SNIPPET_CHARS:]
        try:
            for offset in range(len(block)):
                text = decoder.decode(block[offset : offset + 1])
                line += text.count("\n")
                before = (before + text).rsplit("\n", 1)[-1][-SNIPPET_CHARS:]
            decoder.decode(b"", final)
        except UnicodeDecodeError as exc:
            error = exc
        else:  # never seen: the replay disagrees; name the block's first line instead
            line, before = self._line, self._partial
        bad = error.object[error.start : error.end]
        return Undecodable(self.path, self.encoding, line, bad, before.removeprefix(BOM))


def _blocks(handle: BinaryIO) -> Iterator[bytes]:
    while block := handle.read(BLOCK_BYTES):
        yield block


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


def read_records(path: Path, encoding: str | None = None) -> Iterator[Record | Malformed]:
    """Every non-blank record of `path`, header first; a file that can't be read is a UserError.

    `encoding` is any Python text codec; None means UTF-8, with or without a byte-order mark.
    """
    codec = check_encoding(encoding or "utf-8")
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such file") from exc
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file ({exc.strerror})") from exc
    with handle:
        blocks = _blocks(handle)
        first = next(blocks, b"")  # no seek: the file may be a pipe
        if codec not in UTF8_NAMES and first.startswith(UTF8_BOM):
            raise UserError(
                f'{path}: the file starts with a UTF-8 byte-order mark (Excel\'s "CSV UTF-8"), '
                f"but the encoding given is {codec}; import it without --encoding"
            )
        yield from _records(_LineDecoder(path, codec).lines(chain([first], blocks)))
