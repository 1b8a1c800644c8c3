"""The operator console at `/`: server-rendered pages over the same service layer as the CLI."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from worker.runtime import Context


def mount_console(app: FastAPI, context: Callable[[], Context]) -> None:
    """Add the console's pages, static files and session handling to `app`."""
