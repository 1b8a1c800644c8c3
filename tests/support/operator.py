"""The operator API (`/v1/...`) of a real `create_app` over a test context, through the HTTP
client: in-process ASGI (Starlette's TestClient) as a chosen client address, with or without
the bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from tests.support.world import make_context
from worker.api.app import create_app
from worker.channels.memory import HUB
from worker.runtime import Context

TOKEN = "operator-token-0123456789abcdef"
LOOPBACK = "127.0.0.1"
ELSEWHERE = "203.0.113.9"  # TEST-NET-3: another host


@dataclass
class Api:
    """An app and its context; `client()` speaks to it as an operator would."""

    ctx: Context
    app: FastAPI

    def client(self, host: str = LOOPBACK, token: str | None = TOKEN) -> TestClient:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return TestClient(self.app, client=(host, 50000), headers=headers)


def operator_api(ctx: Context) -> Api:
    """`create_app` exactly as `siyu api` builds it, acting through `ctx`."""
    return Api(ctx, create_app(ctx.settings, ctx.engine, ctx=ctx))


def token_api(db_url: str, redis_url: str, tmp_path: Path, **settings: Any) -> Iterator[Api]:
    """An API with `SIYU_API_TOKEN` set, over a fresh database and Redis (a fixture's body)."""
    HUB.clear()
    ctx = make_context(db_url, redis_url, tmp_path, api_token=TOKEN, claim_batch=50, **settings)
    yield operator_api(ctx)
    ctx.engine.dispose()


def operator_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every operator route the app serves: all of /v1 but inbound.

    FastAPI keeps an included router whole in `app.routes`; `iter_route_contexts` walks the
    routes as they are served, with their prefixes."""
    return sorted(
        (method, str(route.path))
        for route in iter_route_contexts(app.routes)
        if str(route.path).startswith("/v1/") and not str(route.path).startswith("/v1/inbound/")
        for method in route.methods or ()
    )


def response_model_of(app: FastAPI, method: str, path: str) -> tuple[Any, int]:
    """The response model and success status of the route serving `method path`."""
    for route in iter_route_contexts(app.routes):
        if route.path == path and method in (route.methods or ()):
            original = route.original_route
            assert isinstance(original, APIRoute)
            return original.response_model, original.status_code or 200
    raise AssertionError(f"no route {method} {path}")


def error_of(response: Any, status: int) -> str:
    """The `{"error": ...}` of a refusal with `status` (asserted), never a traceback."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) >= {"error"} and "Traceback" not in body["error"], body
    return str(body["error"])
