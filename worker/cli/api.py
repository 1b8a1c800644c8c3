"""`siyu api`: serve the console, the operator API, inbound webhooks and /metrics (uvicorn)."""

from __future__ import annotations

import typer

from worker.errors import UserError


def api(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port)."),
) -> None:
    """Serve the operator console, the operator API, inbound webhooks and /metrics.

    The console is at /, the API under /v1 (OpenAPI at /docs), signed inbound webhooks at
    /v1/inbound/CHANNEL, e-mail unsubscribe links at /u/TOKEN. The console and the API ask
    for SIYU_API_TOKEN (sign-in, or Authorization: Bearer); without one only this machine
    may use them, and listening on anything but loopback is refused. Inbound is refused
    unless SIYU_WEBHOOK_SECRET holds a Standard Webhooks secret (python -m worker.webhooks
    prints a new one).

    Example:
    siyu api --host 0.0.0.0 --port 8000
    """
    import uvicorn

    from worker.api.app import create_app
    from worker.api.hosts import is_loopback
    from worker.config import get_settings
    from worker.observability.logs import configure_logging, level_of

    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}")
    settings = get_settings()
    if settings.api_token is None and not is_loopback(host):
        raise UserError(
            f"--host {host} is reachable from other machines: set SIYU_API_TOKEN (the "
            "operator API's bearer token) first, or listen on 127.0.0.1"
        )
    if not settings.webhook_secret:
        typer.echo(
            "warning: SIYU_WEBHOOK_SECRET is not set: every inbound webhook is refused (503)",
            err=True,
        )
    from worker.replies.drain import request_drain
    from worker.replies.inbound import Stored
    from worker.runtime import get_context

    ctx = get_context()

    def decide_later(stored: Stored) -> None:  # the reply drain decides; the webhook returns
        request_drain(ctx)

    app = create_app(settings, ctx.engine, on_stored=decide_later, ctx=ctx)
    try:
        level = level_of(settings)  # uvicorn applies the same configuration again
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=level.lower(),
            log_config=configure_logging(settings, level),
        )
    except OSError as exc:
        raise UserError(f"api: cannot listen on {host}:{port}: {exc}") from exc


def register(app: typer.Typer) -> None:
    app.command("api")(api)
