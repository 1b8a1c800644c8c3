"""How the operator API refuses: `{"error": "<the message the CLI prints>"}` with a status.

    NotFound              404  a named campaign, segment, account, contact... does not exist
    Conflict              409  the request does not fit the current state: a running campaign
                               edited or started, a name already taken, a segment in use
    ServiceUnavailable    503  the database or Redis cannot be reached
    any other UserError   400  bad input the service layer found (expression, CSV, template...)
    invalid request       422  a field missing or of the wrong type; the message names it
    Refused (api.auth)    401  no or wrong bearer token; 403 another host and no token set

`OperatorRoute` turns these into responses around each operator route only, so the app's
other routes (inbound webhooks, the console's pages) keep their own handling. Anything else
is a bug: the server answers 500 without a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from worker.errors import Conflict, NotFound, ServiceUnavailable, UserError

SHOWN = 3  # invalid fields named in one message
PLACES = {"body": "field", "query": "query parameter", "path": "path parameter"}


class ErrorBody(BaseModel):
    """Every refusal: the message a person can act on (the CLI's own words)."""

    error: str


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {  # any route may answer these
    400: _documented("Bad input (the message says what to fix)"),
    401: _documented("No or wrong bearer token (SIYU_API_TOKEN)"),
    403: _documented("Another host, and no SIYU_API_TOKEN is configured"),
    422: _documented("A field is missing or invalid (named in the message)"),
    503: _documented("The database or Redis cannot be reached"),
}
NAMED: dict[int | str, dict[str, Any]] = {404: _documented("The named entity does not exist")}
STATEFUL: dict[int | str, dict[str, Any]] = {
    **NAMED,
    409: _documented("The request does not fit the entity's current state"),
}


def status_of(exc: UserError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, ServiceUnavailable):
        return 503
    return 400


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def describe(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors as one line naming each field: `field 'name': ...`."""
    parts = []
    for error in errors[:SHOWN]:
        place, *path = [str(part) for part in error.get("loc", ())] or ["body"]
        what = f"{PLACES.get(place, place)} {'.'.join(path)!r}" if path else f"the {place}"
        parts.append(f"{what}: {error.get('msg', 'invalid')}")
    more = f"; and {len(errors) - SHOWN} more" if len(errors) > SHOWN else ""
    return "; ".join(parts) + more


class OperatorRoute(APIRoute):
    """A route whose refusals (auth, validation, the service layer's) are `ErrorBody`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:  # api.auth.Refused among them
                return error_response(exc.status_code, str(exc.detail), exc.headers)
            except RequestValidationError as exc:
                return error_response(422, describe(exc.errors()))
            except UserError as exc:
                return error_response(status_of(exc), str(exc))

        return guarded
