"""`siyu mock-platform`: run the fake messaging platform the `mock` channel talks to."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import typer

from worker.errors import UserError

DEFAULT_DB = Path(".siyu/mock-platform.db")


def mock_platform(
    host: str = typer.Option("127.0.0.1", "--host", metavar="H", help="Interface to listen on."),
    port: int = typer.Option(8900, "--port", metavar="P", help="TCP port to listen on."),
    db: Path = typer.Option(
        DEFAULT_DB, "--db", metavar="FILE", help="SQLite file the platform keeps state in."
    ),
    per_minute: int = typer.Option(
        0, "--per-minute", metavar="N", help="Sends per account per minute; 0 = no limit."
    ),
    ban_after: int = typer.Option(
        0, "--ban-after", metavar="K", help="429s before an account is banned; 0 = never."
    ),
    fail_rate: float = typer.Option(
        0.0, "--fail-rate", metavar="F", help="Probability (0..1) of an injected 500."
    ),
    latency_ms: float = typer.Option(
        0.0, "--latency-ms", metavar="MS", help="Latency added to every response."
    ),
    inbound_url: str | None = typer.Option(
        None,
        "--inbound-url",
        metavar="URL",
        help="Where simulated inbound messages are POSTed (siyu api).",
    ),
    unknown_recipients: str = typer.Option(
        "",
        "--unknown-recipients",
        metavar="A,B...",
        help="Comma-separated recipients that do not exist (404).",
    ),
) -> None:
    """Run the mock messaging platform (state in --db; SIYU_WEBHOOK_SECRET signs inbound).

    Example:
    siyu mock-platform --port 8900 --per-minute 20 --ban-after 3
    """
    from worker.config import get_settings, revealed
    from worker.mockplatform import MockPlatformConfig, serve
    from worker.mockplatform.config import parse_recipients

    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}")
    try:
        config = MockPlatformConfig(
            db_path=db,
            per_minute=per_minute,
            ban_after=ban_after,
            fail_rate=fail_rate,
            latency_ms=latency_ms,
            inbound_url=inbound_url or None,
            webhook_secret=revealed(get_settings().webhook_secret),
            unknown_recipients=parse_recipients(unknown_recipients),
        )
    except ValueError as exc:
        raise UserError(f"mock-platform: {exc}") from exc
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        serve(config, host, port)
    except (OSError, sqlite3.Error) as exc:
        raise UserError(f"mock-platform: cannot use database {str(db)!r}: {exc}") from exc


def register(app: typer.Typer) -> None:
    """Add `mock-platform` to the root command."""
    app.command("mock-platform")(mock_platform)
