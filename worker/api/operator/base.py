"""What every operator route module shares: the services it acts through, its router, auth.

Routes are plain `def` functions: FastAPI runs them in its thread pool, so the service
layer's synchronous database work never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine

from worker.api.auth import check_bearer
from worker.api.operator.errors import ERRORS, OperatorRoute
from worker.config import Settings
from worker.runtime import Context

# Declares the scheme in OpenAPI (the "Authorize" button of /docs); `check_bearer` decides.
BEARER = HTTPBearer(auto_error=False, description="SIYU_API_TOKEN")


@dataclass(frozen=True)
class Operator:
    """The app's settings and database; `context()` when Redis or Celery is needed too
    (start, resume, cancel, a reply), so reading works even while Redis is down."""

    settings: Settings
    engine: Engine
    context: Callable[[], Context]


def new_router(tag: str) -> APIRouter:
    """A resource's router: its OpenAPI tag, the documented refusals, `OperatorRoute`."""
    return APIRouter(tags=[tag], responses=ERRORS, route_class=OperatorRoute)


def authorisation(settings: Settings) -> Any:
    """The dependency every operator route has (`api.auth.check_bearer`)."""

    async def authorised(
        request: Request, _: HTTPAuthorizationCredentials | None = Depends(BEARER)
    ) -> None:
        check_bearer(settings, request, request.url.path)

    return Depends(authorised)


class Document(BaseModel):
    """A response that is a CLI `--json` document: fields beyond the declared ones pass
    through unchanged, so the API gives what the CLI prints even as documents grow."""

    model_config = ConfigDict(extra="allow")


class Body(BaseModel):
    """A request body: an unknown field is refused (422 naming it), never ignored."""

    model_config = ConfigDict(extra="forbid")
