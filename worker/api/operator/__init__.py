"""The operator HTTP API under `/v1` (campaigns, segments, accounts, contacts, suppressions,
the human inbox), on the same service layer as the CLI."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from worker.runtime import Context


def operator_router(context: Callable[[], Context]) -> APIRouter:
    """The API's routes; `context()` gives the process's settings, database and Redis."""
    return APIRouter(prefix="/v1")
