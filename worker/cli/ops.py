"""Operational commands: init, doctor, worker, demo."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import typer

from worker.cli.common import say

if TYPE_CHECKING:
    from worker.runtime import Context

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("doctor")(doctor)
    app.command("worker")(worker)
    app.command("demo")(demo)


def init() -> None:
    """Create or upgrade the schema; safe to run any number of times.

    Example:
    siyu init
    """
    from worker.store.db import describe, get_engine, init_db

    eng = get_engine()
    init_db(eng)
    say(f"schema ready in {describe(eng)}")


def doctor(
    as_json: bool = typer.Option(False, "--json", help="The checks as one JSON document."),
) -> None:
    """What is wrong with this installation, and how to fix it; changes nothing.

    Exits 1 when something needs fixing.

    Example:
    siyu doctor
    """
    from worker.cli.common import emit_json
    from worker.config import get_settings
    from worker.services.doctor import diagnose

    report = diagnose(get_settings())
    if as_json:
        emit_json(report.as_dict())
    else:
        for finding in report.findings:
            typer.echo(finding.line())
    if not report.ok:
        raise typer.Exit(1)


def worker(
    concurrency: int = typer.Option(
        8,
        "--concurrency",
        "-c",
        min=1,
        max=256,
        metavar="N",
        help="Lanes this process runs at once (threads).",
    ),
    loglevel: str | None = typer.Option(
        None,
        "--loglevel",
        "-l",
        metavar="LEVEL",
        help="Log level: DEBUG, INFO, WARNING, ERROR (default: SIYU_LOG_LEVEL, else WARNING).",
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=1,
        max=65535,
        metavar="P",
        help="Serve Prometheus metrics on this port (GET /metrics); default: none.",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1",
        "--metrics-host",
        metavar="H",
        help="Address of the metrics port; 0.0.0.0 for a scraper on another machine.",
    ),
    no_metrics_db: bool = typer.Option(
        False,
        "--no-metrics-db",
        help="Leave out the database gauges (the same from every process): serve them from "
        "siyu api or one worker only.",
    ),
) -> None:
    """Run a Celery worker: account lanes, materialisation and the periodic tick.

    Example:
    siyu worker --concurrency 16 --metrics-port 9101
    """
    from celery.signals import worker_ready, worker_shutting_down

    from worker.campaigns.tick import Ticker
    from worker.config import get_settings
    from worker.dispatch.heartbeat import Heartbeat
    from worker.dispatch.keys import keys
    from worker.limiter import load_policies
    from worker.observability.logs import level_of
    from worker.observability.metrics import serve, worker_registry
    from worker.runtime import SHUTDOWN, get_context
    from worker.runtime.celery_app import celery_app
    from worker.store.db import init_db

    # A malformed policy, or no policy folder at all (a worker started in the wrong
    # directory would otherwise send unlimited), fails here, not at the first send.
    checked = load_policies(get_settings().rate_limits_dir)
    ctx = get_context()
    init_db(ctx.engine)
    check_accounts(ctx)
    queue = keys(ctx).queue  # only this installation's tasks
    ctx.extras["policies"] = checked
    import worker.tasks  # noqa: F401  (registers the tasks)

    if metrics_port is not None:
        serve(worker_registry(ctx.engine, database=not no_metrics_db), metrics_host, metrics_port)

    worker_shutting_down.connect(lambda **_: SHUTDOWN.set(), weak=False)
    ticker = Ticker(ctx)
    ticker.start()
    # Visible to `live_workers` once Celery consumes (a SIGTERM before that kills the
    # process outright: its heartbeat would linger until the TTL).
    heartbeat = Heartbeat(ctx, concurrency=concurrency)
    worker_ready.connect(lambda **_: heartbeat.start(), weak=False)
    try:
        celery_app.worker_main(
            [
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                level_of(get_settings(), loglevel),
                "--queues",
                queue,
                "--hostname",
                f"siyu-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        heartbeat.stop()
        ticker.stop()


def check_accounts(ctx: Context) -> None:
    """Validate every account's stored channel config at start-up, as `accounts add` did.
    One that cannot be used here is paused (its deliveries move to its peers) with an error
    line saying what to fix, instead of failing every lane task of it; the worker still
    starts, for the other accounts."""
    from worker.dispatch import health
    from worker.services.accounts import unusable_accounts

    for bad in unusable_accounts(ctx.engine):
        if not health.unusable_config(ctx, bad.id, bad.name, bad.state, bad.problem):
            log.warning("account %s stays %s: %s", bad.name, bad.state, bad.problem)


def demo(
    contacts: int = typer.Option(
        10_000, "--contacts", min=1, metavar="N", help="Contacts to seed."
    ),
    workers: int = typer.Option(
        2, "--workers", min=1, max=8, metavar="N", help="Worker processes."
    ),
    accounts: int = typer.Option(
        5, "--accounts", min=1, max=50, metavar="N", help="Mock sender accounts."
    ),
) -> None:
    """The whole pipeline on the embedded default, leaving no process behind.

    Example:
    siyu demo --contacts 2000
    """
    from worker.demo import run_demo

    run_demo(contacts=contacts, workers=workers, accounts=accounts)
