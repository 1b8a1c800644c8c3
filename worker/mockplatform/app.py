"""The mock platform's HTTP face: a FastAPI app over `MockPlatform`.

    POST /v1/accounts/{account}/messages   {"to", "text", "idempotency_key"} -> {"message_id"}
    GET  /v1/messages[?account=&to=]       accepted messages in arrival order
    GET  /v1/messages/{idempotency_key}    one message, or 404 {"error": "not_found"}
    GET  /v1/stats                         per-account counters and ban state
    POST /v1/simulate/unknown-recipients   {"to": [...]}: later sends to them get 404
    POST /v1/simulate/inbound              {"account", "from", "text"[, "message_id"]}: signed
                                           POST to inbound_url (an id given: a redelivery)

Handlers are async and call SQLite directly: every statement is a short indexed lookup behind
one lock, cheaper than a hop to the thread pool, and injected latency is an `asyncio.sleep`
that never holds a thread.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.mockplatform.behaviour import MockPlatform, SendOutcome, Verdict
from worker.mockplatform.config import MockPlatformConfig
from worker.mockplatform.inbound import DELIVERY_TIMEOUT_S, deliver_inbound
from worker.mockplatform.store import PlatformStore

NonEmpty = Annotated[str, Field(min_length=1)]


class SendBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    to: NonEmpty
    text: str
    idempotency_key: NonEmpty


class InboundBody(BaseModel):
    model_config = ConfigDict(strict=True, populate_by_name=True)

    account: NonEmpty
    sender: NonEmpty = Field(alias="from")
    text: str
    message_id: NonEmpty | None = None  # given: deliver that message again (a webhook retry)


class UnknownRecipientsBody(BaseModel):
    model_config = ConfigDict(strict=True)

    to: list[NonEmpty]


_REFUSALS: dict[Verdict, tuple[int, str]] = {
    Verdict.BANNED: (403, "account_banned"),
    Verdict.NOT_FOUND: (404, "recipient_not_found"),
    Verdict.FAILED: (500, "internal"),
}


def outcome_response(outcome: SendOutcome) -> JSONResponse:
    """The HTTP answer a real platform would give for this verdict."""
    if outcome.verdict in (Verdict.ACCEPTED, Verdict.DUPLICATE):
        return JSONResponse({"message_id": outcome.message_id})
    if outcome.verdict is Verdict.RATE_LIMITED:
        wait_s = outcome.retry_after_s or 0.0
        return JSONResponse(
            {"error": "rate_limited", "retry_after": wait_s},
            status_code=429,
            headers={"Retry-After": str(math.ceil(wait_s))},
        )
    status, error = _REFUSALS[outcome.verdict]
    return JSONResponse({"error": error}, status_code=status)


def _unprocessable(exc: ValidationError) -> JSONResponse:
    """FastAPI's 422 shape, without echoing the input (it may hold message text)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    return JSONResponse({"detail": errors}, status_code=422)


def _body_schema(model: type[BaseModel]) -> dict[str, object]:
    """Document a body that a handler parses itself."""
    schema = {"application/json": {"schema": model.model_json_schema()}}
    return {"requestBody": {"required": True, "content": schema}}


def create_app(
    config: MockPlatformConfig,
    *,
    clock: Callable[[], float] = time.time,
    rng: Callable[[], float] = random.random,
) -> FastAPI:
    """A mock platform app over `config.db_path` (opened now, so a bad path fails at once)."""
    platform = MockPlatform(PlatformStore(config.db_path), config, clock=clock, rng=rng)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_S) as client:
            app.state.inbound_client = client
            yield
        platform.store.close()

    app = FastAPI(title="siyu mock platform", lifespan=lifespan)
    app.state.platform = platform
    _add_message_routes(app, platform)
    _add_simulation_routes(app, platform)
    return app


def _add_message_routes(app: FastAPI, platform: MockPlatform) -> None:
    latency_s = platform.config.latency_ms / 1000

    async def delay() -> None:
        if latency_s > 0:
            await asyncio.sleep(latency_s)

    @app.post("/v1/accounts/{account:path}/messages", openapi_extra=_body_schema(SendBody))
    async def send_message(account: str, request: Request) -> JSONResponse:
        # The body is validated by pydantic-core directly: FastAPI's dependency machinery
        # would cost more than the whole SQLite transaction on this hot path.
        try:
            body = SendBody.model_validate_json(await request.body())
        except ValidationError as exc:
            return _unprocessable(exc)
        if not account:
            return JSONResponse({"error": "empty account"}, status_code=404)
        # Decide first, then wait: a client that times out during the latency has still been
        # delivered to, which is exactly the ambiguity real platforms create.
        outcome = platform.submit(account, body.to, body.text, body.idempotency_key)
        await delay()
        return outcome_response(outcome)

    @app.get("/v1/messages")
    async def list_messages(account: str | None = None, to: str | None = None) -> JSONResponse:
        found = platform.messages(account, to)
        await delay()
        return JSONResponse([m.to_json() for m in found])

    @app.get("/v1/messages/{idempotency_key:path}")
    async def get_message(idempotency_key: str) -> JSONResponse:
        found = platform.find(idempotency_key)
        await delay()
        if found is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(found.to_json())

    @app.get("/v1/stats")
    async def stats() -> JSONResponse:
        return JSONResponse({name: asdict(s) for name, s in platform.stats().items()})


def _add_simulation_routes(app: FastAPI, platform: MockPlatform) -> None:
    config = platform.config

    @app.post("/v1/simulate/unknown-recipients")
    async def mark_unknown(body: UnknownRecipientsBody) -> JSONResponse:
        platform.mark_unknown(body.to)
        return JSONResponse({"unknown_recipients": sorted(set(body.to))})

    @app.post("/v1/simulate/inbound")
    async def simulate_inbound(body: InboundBody) -> JSONResponse:
        if not config.inbound_url:
            return JSONResponse({"error": "no inbound_url configured"}, status_code=409)
        delivery = await deliver_inbound(
            app.state.inbound_client,
            config.inbound_url,
            body.account,
            body.sender,
            body.text,
            config.webhook_secret,
            body.message_id,
        )
        return JSONResponse(delivery.to_json())
