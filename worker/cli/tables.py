"""Tables for people: they fit an 80-column terminal, never cut a name, never break a URL.

A name (campaign, account, segment, contact id or name) sits in a column that never wraps and
is at least as wide as its longest name. Every other column folds its text onto more lines
instead of hiding it behind an ellipsis, and rich narrows those columns until the table fits
the terminal; a URL in one of them is a word rich may not fold. Only when the names and URLs
alone are wider than the terminal does the table run past its edge (the terminal wraps the
long lines) rather than cut one of them; then no word is folded either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.cells import cell_len
from rich.console import JustifyMethod
from rich.table import Column, Table
from rich.text import Text

from worker.cli.common import console

URL = re.compile(r"\S+://\S+")
UNBOUNDED = 100_000  # a width to measure at: what the table needs, not what it gets


@dataclass(frozen=True)
class Col:
    """One column: its header and what its cells hold.

    `name`: names, never wrapped. `number`: right-aligned, never wrapped. `text`: anything
    else, folded when the table must narrow.
    """

    header: str
    kind: Literal["name", "text", "number"] = "text"


def print_table(columns: Sequence[Col], rows: Iterable[Sequence[str]]) -> None:
    """Print `rows` under `columns`: a rule under the header, no frame, two spaces between
    columns. Every cell is literal text (a `[` in a name or an error is not markup)."""
    cells = [list(row) for row in rows]
    by_column = [[row[i] for row in cells] for i in range(len(columns))]
    table = _table(columns, by_column)
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    # The narrowest the table may be: names, numbers and URLs whole, other text folded down
    # to its header's longest word (measured on the headers alone).
    unbounded = console.options.update_width(UNBOUNDED)
    needed = console.measure(_table(columns, by_column), options=unbounded).minimum
    if needed > console.width:  # names or URLs alone are wider: overflow, fold no word
        table.width = console.measure(table, options=unbounded).minimum
    console.print(table, crop=False)


def _table(columns: Sequence[Col], cells: list[list[str]]) -> Table:
    return Table(
        *(_column(col, column) for col, column in zip(columns, cells, strict=True)),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


def _column(col: Col, cells: list[str]) -> Column:
    header_width = max(cell_len(word) for word in col.header.split())
    if col.kind == "text":  # a min_width here only for a URL: rich may overshoot a minimum
        urls = [cell_len(url) for cell in cells for url in URL.findall(cell)]
        return Column(col.header, overflow="fold", min_width=max(urls, default=None))
    widest = max((cell_len(line) for cell in cells for line in cell.splitlines()), default=0)
    justify: JustifyMethod = "right" if col.kind == "number" else "left"
    return Column(col.header, justify=justify, no_wrap=True, min_width=max(widest, header_width))
