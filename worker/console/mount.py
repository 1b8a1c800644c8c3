"""`mount_console`: the console's pages, static files and sessions, added to the API app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from worker.console import campaign_pages, dashboard, people, signin, wizard
from worker.console.session import ConsoleSessions
from worker.console.web import Console
from worker.runtime import Context

STATIC_DIR = Path(__file__).resolve().parent / "static"


def mount_console(app: FastAPI, context: Callable[[], Context]) -> None:
    """Add the console's pages, static files and session handling to `app`."""
    console = Console.build(context)
    app.add_middleware(ConsoleSessions, settings=lambda: context().settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    # The wizard's /campaigns/new before the campaign pages' /campaigns/{name}.
    for module in (signin, dashboard, wizard, campaign_pages, people):
        app.include_router(module.router(console))
