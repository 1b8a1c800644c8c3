"""`python -m worker.mockplatform`: run the mock platform stand-alone (argparse, no siyu imports).

Bad option values print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path
from typing import NoReturn

from worker.mockplatform.config import MockPlatformConfig, parse_recipients
from worker.mockplatform.server import serve

DEFAULT_DB = Path(".siyu/mock-platform.db")


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        fail(message)


def fail(message: str) -> NoReturn:
    sys.stderr.write(f"mock platform: error: {message}\n")
    sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m worker.mockplatform", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help="SQLite file kept across runs")
    parser.add_argument("--per-minute", type=int, default=0, help="per-account limit; 0 = none")
    parser.add_argument("--ban-after", type=int, default=0, help="429s before a ban; 0 = never")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="probability of a 500")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every response")
    parser.add_argument("--inbound-url", default=None, help="where simulated inbound goes")
    parser.add_argument("--unknown-recipients", default="", help="comma-separated; get 404")
    return parser


def config_from_args(args: argparse.Namespace) -> MockPlatformConfig:
    """The platform config for parsed arguments; the webhook secret comes from the environment."""
    if not 0 <= args.port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, got {args.port}")
    return MockPlatformConfig(
        db_path=args.db,
        per_minute=args.per_minute,
        ban_after=args.ban_after,
        fail_rate=args.fail_rate,
        latency_ms=args.latency_ms,
        inbound_url=args.inbound_url or None,
        webhook_secret=os.environ.get("SIYU_WEBHOOK_SECRET") or None,
        unknown_recipients=parse_recipients(args.unknown_recipients),
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        args.db.parent.mkdir(parents=True, exist_ok=True)
        serve(config, args.host, args.port)
    except ValueError as exc:
        fail(str(exc))
    except (OSError, sqlite3.Error) as exc:
        fail(f"cannot use database {str(args.db)!r}: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
