"""Live progress bars per account for `campaigns status --watch` and the demo.

Above the bars, the head of `campaigns status` (state, window, ETA in the campaign's zone,
counts) is redrawn with them. Account names are never cut: the bars narrow instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

from worker.campaigns.timeparse import local_text, zone
from worker.cli.common import console

FINAL = {"completed", "cancelled"}


def status_lines(doc: dict[str, Any]) -> list[str]:
    """The head of `campaigns status`: one fact per line, times in the campaign's zone."""
    window = doc["window"]
    tz = zone(window["tz"])
    start = local_text(window["start"], tz) or "when started"
    end = local_text(window["end"], tz) or "open-ended"
    return [
        f"{doc['name']}  {doc['status']}  total {doc['total']}",
        f"window {start} .. {end}",
        f"eta {local_text(doc['eta'], tz) or '-'}",
        "  ".join(f"{k} {v}" for k, v in doc["counts"].items()),
    ]


class _Bars(Progress):
    """rich's Progress with the status head above the bars."""

    head: tuple[str, ...] = ()

    def get_renderables(self) -> Iterable[RenderableType]:
        yield Text("\n".join(self.head), no_wrap=True, overflow="ignore")
        yield self.make_tasks_table(self.tasks)


def _bars() -> _Bars:
    return _Bars(
        TextColumn("{task.description}", markup=False, table_column=Column(no_wrap=True)),
        BarColumn(bar_width=None),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[state]}", markup=False, table_column=Column(no_wrap=True)),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        console=console,
        transient=False,
    )


def watch_status(
    fetch: Callable[[], dict[str, Any]],
    *,
    interval_s: float = 0.5,
    until_done: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Redraw bars from `fetch()` until the campaign is completed or cancelled."""
    doc = fetch()
    tasks: dict[str, TaskID] = {}
    with _bars() as progress:
        overall = progress.add_task("all", total=doc["total"] or 1, state=doc["status"])
        while True:
            progress.head = tuple(status_lines(doc))
            _update(progress, tasks, overall, doc)
            if (until_done and doc["status"] in FINAL) or should_stop():
                return doc
            time.sleep(interval_s)
            doc = fetch()


def _update(
    progress: Progress, tasks: dict[str, TaskID], overall: TaskID, doc: dict[str, Any]
) -> None:
    counts = doc["counts"]
    settled = doc["total"] - counts["pending"]
    progress.update(overall, total=max(doc["total"], 1), completed=settled, state=doc["status"])
    for name, entry in doc["accounts"].items():
        total = entry["sent"] + entry["pending"]
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=max(total, 1), state=entry["state"])
        progress.update(
            tasks[name], total=max(total, 1), completed=entry["sent"], state=entry["state"]
        )
