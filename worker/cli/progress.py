"""Live progress bars per account for `campaigns status --watch` and the demo."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from worker.cli.common import console

FINAL = {"completed", "cancelled"}


def _bars() -> Progress:
    return Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
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
