"""The FastAPI application behind `siyu api`.

    POST /v1/inbound/{channel}   a platform delivers what a learner wrote (Standard Webhooks)
    GET  /u/{token}              an e-mail's unsubscribe link: a page asking to confirm
    POST /u/{token}              unsubscribe (the page's form, or RFC 8058 one-click)
    GET  /healthz                the process answers and its database is reachable
    GET  /metrics                Prometheus metrics (`api.metrics`: who may scrape them)

Inbound is verified before anything is parsed: without `SIYU_WEBHOOK_SECRET` it is refused
(503, nothing stored); a missing, wrong or stale signature is 401 and nothing is stored; a
payload that can never be stored is 400 with the reason (the platform should not retry it);
the same provider message twice is stored once and answered 200 both times.

Unsubscribe links need no API token: recipients follow them. Only a POST unsubscribes (mail
scanners fetch links with GET); a token that is not valid, or any token while
`SIYU_UNSUBSCRIBE_SECRET` is unset, is a bare 404.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import Engine, text

from worker import __version__
from worker.api.metrics import add_metrics_route
from worker.api.operator import operator_router
from worker.channels.registry import known_channels
from worker.config import Settings, revealed
from worker.console.mount import mount_console
from worker.replies.inbound import (
    InboundPayload,
    InboundRejected,
    Stored,
    parse_inbound,
    record_inbound,
)
from worker.runtime import Context, build_context
from worker.unsubscribe import read_token, unsubscribe
from worker.webhooks import WebhookVerificationError, check_secret

OnStored = Callable[[Stored], None]
# Threads doing the database work of requests. Storing a webhook is about a millisecond of
# CPU, most of it holding the GIL: more threads than cores only add GIL handoffs (5 ms
# each at worst) to the slowest requests. bench/replies.py at 200 webhooks/s: decision p95
# 29-44 ms with 4 threads against 34-51 ms with anyio's default 40.
DB_THREADS = 4


def create_app(
    settings: Settings,
    engine: Engine,
    on_stored: OnStored | None = None,
    *,
    ctx: Context | None = None,
) -> FastAPI:
    """The app over `engine`; `on_stored` runs for each newly stored inbound message.

    `ctx` is what the operator API and the console act through (starting a campaign needs
    Redis too); without one, it is made from `settings` and `engine` on first use.
    """
    app = FastAPI(title="siyu", version=__version__, docs_url="/docs", redoc_url=None)
    threads = CapacityLimiter(DB_THREADS)  # the app's own: not shared with other apps
    context = ctx_factory(settings, engine, ctx)
    # Scanning the entry points costs milliseconds: once per app, not once per webhook (a
    # channel installed later needs a restart of `siyu api`, as its code does anyway).
    channels = frozenset(known_channels())

    def store(channel: str, payload: InboundPayload) -> Stored:
        stored = record_inbound(engine, channel, payload)
        if stored.created and on_stored is not None:
            on_stored(stored)
        return stored

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        def ping() -> None:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        await to_thread.run_sync(ping, limiter=threads)
        return JSONResponse({"ok": True})

    add_metrics_route(app, settings, engine, threads)
    app.include_router(operator_router(context, settings, engine))
    mount_console(app, context)

    @app.post("/v1/inbound/{channel}")
    async def inbound(channel: str, request: Request) -> JSONResponse:
        secret = revealed(settings.webhook_secret)
        if not secret:
            return _error(503, "inbound webhooks are refused: SIYU_WEBHOOK_SECRET is not set")
        try:
            verifier = check_secret(secret)
        except ValueError as exc:
            return _error(503, str(exc))
        body = await request.body()
        try:
            verifier.verify(body, dict(request.headers), json_parse=False)
        except WebhookVerificationError as exc:
            return _error(401, f"webhook signature: {exc}")
        if channel not in channels:
            return _error(404, f"unknown channel {channel!r}")
        try:
            payload = parse_inbound(body)
            stored = await to_thread.run_sync(store, channel, payload, limiter=threads)
        except InboundRejected as exc:
            return _error(400, str(exc))
        return JSONResponse({"message_id": stored.message_id, "duplicate": not stored.created})

    @app.get("/u/{token}")
    async def unsubscribe_page(token: str) -> HTMLResponse:
        if _contact_of(settings, token) is None:
            return _page(NOT_FOUND, 404)
        return _page(CONFIRM)

    @app.post("/u/{token}")
    async def unsubscribe_now(token: str) -> HTMLResponse:
        contact_id = _contact_of(settings, token)
        if contact_id is None:
            return _page(NOT_FOUND, 404)
        await to_thread.run_sync(unsubscribe, engine, contact_id, limiter=threads)
        return _page(DONE)

    return app


def ctx_factory(settings: Settings, engine: Engine, ctx: Context | None) -> Callable[[], Context]:
    """`ctx`, or one built on first call (its Redis client is made then, not at import)."""
    made: list[Context] = [ctx] if ctx is not None else []
    lock = threading.Lock()

    def context() -> Context:
        with lock:
            if not made:
                made.append(build_context(settings, engine))
            return made[0]

    return context


def _contact_of(settings: Settings, token: str) -> int | None:
    secret = settings.unsubscribe_secret
    return None if secret is None else read_token(secret.get_secret_value(), token)


def _page(body: str, status: int = 200) -> HTMLResponse:
    """A small page no cache keeps and no link on it leaks the token from (as a Referer)."""
    html = f"<!DOCTYPE html>{PAGE_HEAD}<body>{body}</body></html>"
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(html, status_code=status, headers=headers)


PAGE_HEAD = (
    '<html lang="zh"><head><meta charset="utf-8"><meta name="robots" content="noindex">'
    '<meta name="viewport" content="width=device-width"><title>退订 Unsubscribe</title></head>'
)
# The form posts what a one-click client posts (RFC 8058), to this same address.
CONFIRM = (
    "<p>不再接收我们的邮件？<br>Stop receiving our e-mails?</p>"
    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">退订 Unsubscribe</button></form>'
)
DONE = (
    "<p>您已退订，不会再收到这些邮件。<br>"
    "You are unsubscribed and will get no more of these e-mails.</p>"
)
NOT_FOUND = "<p>Not found</p>"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
