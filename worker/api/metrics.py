"""`GET /metrics`: the Prometheus exposition of `siyu api` (`observability.metrics`).

Who may scrape (`api.auth`): with `SIYU_API_TOKEN` set, whoever sends it as `Authorization:
Bearer TOKEN` (Prometheus: `authorization: {credentials_file: ...}`), from anywhere; without
it, only clients on this host (loopback), as the operator API is only for loopback without a
token. The figures name accounts and counts, never a contact, but they are the business's own.
"""

from __future__ import annotations

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine

from worker.api.auth import Refused, check_bearer
from worker.config import Settings
from worker.observability.metrics import api_registry


def add_metrics_route(
    app: FastAPI, settings: Settings, engine: Engine, threads: CapacityLimiter
) -> None:
    """Serve this app's own registry (never the process-wide default) at `/metrics`."""
    registry = api_registry(engine)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        try:
            check_bearer(settings, request, "/metrics")
        except Refused as exc:
            return JSONResponse(
                {"error": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        body = await to_thread.run_sync(generate_latest, registry, limiter=threads)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
