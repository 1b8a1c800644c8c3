"""Privacy in logs (issue 9, item 8): phone numbers are masked in every line a siyu process
writes, and a worker deciding an inbound message logs neither its text nor the number."""

from __future__ import annotations

import io
import logging
import logging.config
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.signals import setup_logging
from sqlalchemy import create_engine, select, text

from tests.support.cluster import wait_for, worker_env
from tests.support.world import add_accounts, make_context
from worker import logmask
from worker.dispatch.keys import keys
from worker.logmask import MaskFilter, mask_phones
from worker.observability.logs import log_config
from worker.replies.inbound import InboundPayload, record_inbound
from worker.runtime import Context, procs
from worker.runtime.celery_app import celery_app
from worker.store import tables

REPO = Path(__file__).resolve().parent.parent
M = tables.messages.c


def masked_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger that writes only to a string, through a handler with the mask filter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(MaskFilter())
    logger = logging.getLogger(f"test.logmask.{name}")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.DEBUG
    return logger, out


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13812345678", "138****5678"),
        ("tel:19987654321.", "tel:199****4321."),
        ("+8613812345678", "+861******5678"),
        ("+447911123456", "+447*****3456"),
        ("+12345678", "+****5678"),
        ("u13812345678", "u138****5678"),  # an external id that is a number in disguise
        ("12812345678", "12812345678"),  # not a mobile prefix
        ("138123456789", "138123456789"),  # part of a longer number: an order, a timestamp
        ("message 1733312345678 of 2024", "message 1733312345678 of 2024"),
    ],
)
def test_phone_numbers_keep_their_first_three_and_last_four_digits(raw: str, masked: str) -> None:
    assert mask_phones(raw) == masked


def test_a_phone_in_the_log_arguments_never_reaches_the_line() -> None:
    log, out = masked_logger("args")
    log.warning("contact %s (%s) wrote %d times", "13812345678", "+8613912345678", 3)
    assert out.getvalue() == "WARNING contact 138****5678 (+861******5678) wrote 3 times\n"


def test_a_phone_in_an_exception_and_its_traceback_is_masked() -> None:
    log, out = masked_logger("exc")
    try:
        raise ValueError("no conversation for 13812345678")
    except ValueError:
        log.exception("reply for %s failed", "+8613812345678")
    written = out.getvalue()
    assert "13812345678" not in written and "8613812345678" not in written
    assert "ValueError: no conversation for 138****5678" in written
    assert "reply for +861******5678 failed" in written


def test_an_exception_formatted_by_an_earlier_handler_is_masked_too() -> None:
    log, out = masked_logger("exc-earlier")
    plain = io.StringIO()
    log.handlers.insert(0, logging.StreamHandler(plain))  # formats (and caches) the text first
    try:
        raise KeyError("13812345678")
    except KeyError:
        log.exception("lookup failed")
    assert "138****5678" in out.getvalue() and "13812345678" not in out.getvalue()


def test_sqlalchemy_errors_lose_their_parameters() -> None:
    log, out = masked_logger("sql")
    engine = create_engine("sqlite://")
    body = "".join(["请问早鸟", "价到哪天"])  # not in the traceback's source lines either
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT * FROM nowhere WHERE body = :b"), {"b": body})
    except Exception:
        log.exception("store failed")
    finally:
        engine.dispose()
    written = out.getvalue()
    assert "[parameters: hidden]" in written and body not in written


def test_arguments_that_do_not_fit_the_format_are_still_masked() -> None:
    log, out = masked_logger("bad-args")
    log.warning("only one %s", "13812345678", "13912345678")
    assert "13812345678" not in out.getvalue() and "13912345678" not in out.getvalue()


def test_formatters_that_read_the_arguments_keep_working() -> None:
    """uvicorn's access log unpacks `record.args`: masking must keep them a tuple."""
    from uvicorn.logging import AccessFormatter

    log, out = masked_logger("access")
    log.handlers[0].setFormatter(
        AccessFormatter('%(client_addr)s "%(request_line)s" %(status_code)s')
    )
    log.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/v1/x?to=13812345678", "1.1", 200)
    assert out.getvalue() == '127.0.0.1:5 "GET /v1/x?to=138****5678 HTTP/1.1" 200 OK\n'


@pytest.fixture
def logging_state() -> Iterator[None]:
    """Put back what the tests below change in the process's logging."""
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access"]
    saved = {n: (logging.getLogger(n), logging.getLogger(n).level) for n in names}
    handlers = {n: list(logger.handlers) for n, (logger, _) in saved.items()}
    propagate = {n: logger.propagate for n, (logger, _) in saved.items()}
    last_resort = list(logging.lastResort.filters) if logging.lastResort else []
    yield
    for n, (logger, level) in saved.items():
        logger.setLevel(level)
        logger.handlers = handlers[n]
        logger.propagate = propagate[n]
    if logging.lastResort is not None:
        logging.lastResort.filters = last_resort


def test_siyu_api_writes_every_logger_through_a_masking_handler(logging_state: None) -> None:
    logging.config.dictConfig(log_config("text", "warning"))
    handlers = {*logging.getLogger().handlers, *logging.getLogger("uvicorn").handlers,
                *logging.getLogger("uvicorn.access").handlers}  # fmt: skip
    assert handlers and all(any(isinstance(f, MaskFilter) for f in h.filters) for h in handlers)
    out = io.StringIO()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, type(logging.lastResort)
        ):
            handler.setStream(out)
    logging.getLogger("worker.api.app").warning("inbound from %s refused", "13812345678")
    assert "138****5678" in out.getvalue() and "13812345678" not in out.getvalue()


def test_the_cli_masks_the_last_resort_handler(logging_state: None) -> None:
    logmask.install()
    assert logging.lastResort is not None
    assert any(isinstance(f, MaskFilter) for f in logging.lastResort.filters)
    logmask.install()
    assert sum(isinstance(f, MaskFilter) for f in logging.lastResort.filters) == 1


def test_the_celery_worker_writes_through_a_masking_handler(logging_state: None) -> None:
    """siyu answers Celery's `setup_logging` signal, so Celery adds no handler of its own."""
    assert celery_app is not None  # importing the app connects the signal
    receivers = setup_logging.send(
        sender=None, loglevel=logging.INFO, logfile=None, format="", colorize=False
    )
    assert receivers, "Celery would configure logging itself without a receiver"
    handlers = logging.getLogger().handlers
    assert handlers and all(any(isinstance(f, MaskFilter) for f in h.filters) for h in handlers)
    assert logging.getLogger().level == logging.INFO


# --- a real worker ---------------------------------------------------------------------------

PHONE, OTHER_PHONE = "13812345678", "13912345678"
TEXT = f"我的手机号是{PHONE}，请问早鸟价截止到哪天？暗号 XJ-7731"


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    context = make_context(db_url, redis_url, tmp_path)
    shutil.copytree(REPO / "templates" / "replies", context.settings.templates_dir / "replies")
    yield context
    context.engine.dispose()


@pytest.mark.slow
def test_a_worker_deciding_an_inbound_message_logs_neither_its_text_nor_a_phone(
    ctx: Context, db_url: str, redis_url: str, tmp_path: Path
) -> None:
    add_accounts(ctx.engine, ["a1"], channel="mock", url="http://127.0.0.1:9")
    payload = {"message_id": "p1", "account": "a1", "from": f"+86{OTHER_PHONE}", "text": TEXT}
    stored = record_inbound(ctx.engine, "mock", InboundPayload.model_validate(payload))
    celery_app.send_task("siyu.replies", queue=keys(ctx).queue)
    env = worker_env(ctx, db_url, redis_url, {"mock": "[account]\n"}, PYTHONUNBUFFERED="1")
    log = tmp_path / "worker.log"
    args = [sys.executable, "-m", "worker", "worker", "--concurrency", "1", "--loglevel", "DEBUG"]
    worker = procs.spawn(args, env=env, log=log, cwd=REPO)
    decided = select(M.decided_at).where(M.id == stored.message_id)

    def done() -> bool:
        with ctx.engine.connect() as conn:
            return conn.execute(decided).scalar() is not None

    try:
        assert wait_for(done, 60, 0.2), log.read_text(errors="replace")[-3000:]
    finally:
        procs.stop(worker, timeout_s=20)
    with ctx.engine.connect() as conn:
        answers = list(conn.execute(select(M.text).where(M.inbound.is_(False))).scalars())
    written = log.read_text(errors="replace")
    assert f"inbound message {stored.message_id}: " in written, "the task's own line is there"
    for secret in (PHONE, OTHER_PHONE, "早鸟价截止", "XJ-7731", *answers):
        assert secret not in written, f"{secret!r} is in the worker's log"
