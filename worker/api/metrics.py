"""`GET /metrics`: the Prometheus exposition of `siyu api` (`observability.metrics`).

Who may scrape: with `SIYU_API_TOKEN` set, whoever sends it as `Authorization: Bearer TOKEN`
(Prometheus: `authorization: {credentials_file: ...}`), from anywhere; without it, only
clients on this host (loopback), as the operator API is only for loopback without a token.
The figures name accounts and counts, never a contact, but they are the business's own.
"""

from __future__ import annotations

import hmac

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine

from worker.api.hosts import is_loopback
from worker.config import Settings, revealed
from worker.observability.metrics import api_registry


def add_metrics_route(
    app: FastAPI, settings: Settings, engine: Engine, threads: CapacityLimiter
) -> None:
    """Serve this app's own registry (never the process-wide default) at `/metrics`."""
    registry = api_registry(engine)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        refusal = _refusal(settings, request)
        if refusal is not None:
            return refusal
        body = await to_thread.run_sync(generate_latest, registry, limiter=threads)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def _refusal(settings: Settings, request: Request) -> JSONResponse | None:
    token = revealed(settings.api_token)
    if token is None:
        if is_loopback(request.client.host if request.client else None):
            return None
        return _error(403, "/metrics from another host needs SIYU_API_TOKEN (a bearer token)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode()):
        return None
    return _error(401, "/metrics needs Authorization: Bearer <SIYU_API_TOKEN>")


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)
