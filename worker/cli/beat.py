"""`siyu beat`: the scheduler of cron campaigns (`campaigns.recurring` decides everything)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import typer

from worker.errors import UserError

log = logging.getLogger("worker.beat")


def beat(
    loglevel: str = typer.Option(
        "INFO",
        "--loglevel",
        "-l",
        metavar="LEVEL",
        help="What to log: DEBUG, INFO (each firing and skip), WARNING, ERROR.",
    ),
) -> None:
    """Run the scheduler of cron campaigns: a run at each due time, once.

    Any number may run: each due time is claimed in the database by one of
    them. A due time found later than SIYU_BEAT_GRACE_S after it passed is
    skipped and recorded, never fired late. Stops on SIGTERM or Ctrl-C.

    Example:
    siyu beat --loglevel INFO
    """
    from worker.campaigns.recurring import beat_once
    from worker.config import get_settings
    from worker.observability.logs import configure_logging
    from worker.runtime import get_context
    from worker.store.db import init_db
    from worker.store.models import utcnow

    if not isinstance(logging.getLevelName(loglevel.upper()), int):
        raise UserError(f"--loglevel must be DEBUG, INFO, WARNING or ERROR, got {loglevel!r}")
    configure_logging(get_settings(), loglevel)
    ctx = get_context()
    init_db(ctx.engine)
    stop = _stop_on_signals()
    poll_s = ctx.settings.beat_poll_s
    log.info("beat started: looking every %gs, grace %gs", poll_s, ctx.settings.beat_grace_s)
    while not stop.is_set():
        try:
            beat_once(ctx, utcnow())
        except Exception:  # keep the schedule alive through a transient database or Redis error
            log.exception("beat failed; trying again")
        stop.wait(poll_s)
    log.info("beat stopped")


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the loop finishes its look and exits."""
    stop = threading.Event()

    def _handle(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    return stop


def register(app: typer.Typer) -> None:
    app.command("beat")(beat)
