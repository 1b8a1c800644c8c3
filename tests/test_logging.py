"""Logging configured by siyu (issue 11, item 3): `SIYU_LOG_FORMAT=json|text`, masked in every
process, account state changes as structured events, and Celery task events for Flower."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.events import EventReceiver

from tests.support.cli import one_error_line, siyu_on
from tests.support.cluster import wait_for, worker_env
from tests.support.fakes import ScriptedChannel, register_fakes
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns.materialise import materialise
from worker.channels.errors import AccountBanned
from worker.config import Settings
from worker.dispatch import health
from worker.dispatch.keys import keys
from worker.dispatch.lane import run_lane
from worker.logmask import MaskFilter
from worker.observability.logs import LIBRARY_LOGGERS, configure_logging
from worker.runtime import Context, procs
from worker.runtime.celery_app import celery_app
from worker.store.models import utcnow

REPO = Path(__file__).resolve().parent.parent
PHONE, OTHER_PHONE = "13812345678", "+8613912345678"
EMAIL, OTHER_EMAIL = "zhang.san@example.com", "li.si@mail.example.org"


@pytest.fixture
def logging_state() -> Iterator[None]:
    """Put back what configuring logging changes in this process."""
    names = ["", *LIBRARY_LOGGERS]
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)


def configure(log_format: str, level: str = "INFO") -> None:
    configure_logging(Settings(log_format=log_format), level)  # type: ignore[arg-type]


def records(text: str) -> list[dict[str, Any]]:
    """Every line parsed as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def events(text: str) -> list[dict[str, Any]]:
    return [r for r in records(text) if r.get("event") == "account_state"]


def test_a_json_line_is_one_object_with_time_level_logger_message_and_fields(
    capsys: pytest.CaptureFixture[str], logging_state: None
) -> None:
    configure("json")
    extra = {"event": "lane_stop", "account": "a1", "count": 3}
    logging.getLogger("worker.test").warning("lane %s stopped", "a1", extra=extra)
    [doc] = records(capsys.readouterr().err)
    assert {k: doc[k] for k in ("level", "logger", "message")} == {
        "level": "WARNING",
        "logger": "worker.test",
        "message": "lane a1 stopped",
    }
    assert {k: doc[k] for k in extra} == extra
    stamp = datetime.fromisoformat(doc["ts"])
    assert stamp.utcoffset() == timedelta(0)


def test_json_lines_mask_phones_and_emails_in_message_fields_and_traceback(
    capsys: pytest.CaptureFixture[str], logging_state: None
) -> None:
    configure("json")
    try:
        raise ValueError(f"no contact {EMAIL}")
    except ValueError:
        logging.getLogger("worker.test").exception(
            "reply to %s failed",
            PHONE,
            extra={"to": OTHER_EMAIL, "phone": OTHER_PHONE, "data": {"args": [PHONE]}},
        )
    written = capsys.readouterr().err
    for raw in (PHONE, OTHER_PHONE, EMAIL, OTHER_EMAIL, "zhang.san", "li.si"):
        assert raw not in written
    [doc] = records(written)
    assert doc["message"] == "reply to 138****5678 failed"
    assert (doc["to"], doc["phone"]) == ("l***@mail.example.org", "+861******5678")
    assert doc["data"] == {"args": ["138****5678"]}, "inside structured fields too"
    assert "ValueError: no contact z***@example.com" in doc["exc"]


def test_the_text_format_is_a_line_with_level_and_logger_and_masked(
    capsys: pytest.CaptureFixture[str], logging_state: None
) -> None:
    configure("text")
    logging.getLogger("worker.test").warning("mail to %s bounced", EMAIL)
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(" WARNING worker.test: mail to z***@example.com bounced"), line


def test_uvicorn_and_celery_loggers_write_through_the_same_handler(
    capsys: pytest.CaptureFixture[str], logging_state: None
) -> None:
    configure("json")
    for name in ("uvicorn.error", "celery.worker"):
        logging.getLogger(name).warning("from %s", PHONE)
    docs = records(capsys.readouterr().err)
    assert [d["logger"] for d in docs] == ["uvicorn.error", "celery.worker"]
    assert all(d["message"] == "from 138****5678" for d in docs)


# --- account events --------------------------------------------------------------------------


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    ScriptedChannel.reset()
    register_fakes()
    context = make_context(db_url, redis_url, tmp_path)
    yield context
    context.engine.dispose()


def test_a_banned_account_is_one_structured_error_event_with_the_reason(
    ctx: Context, capsys: pytest.CaptureFixture[str], logging_state: None
) -> None:
    accounts = add_accounts(ctx.engine, ["a1"], channel="scripted")
    add_contacts(ctx.engine, 3, channel="scripted")
    add_campaign(ctx, "c1", ["a1"])
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
    ScriptedChannel.scripts["a1"] = lambda m: (_ for _ in ()).throw(AccountBanned("banned"))
    configure("json", "WARNING")
    capsys.readouterr()
    assert run_lane(ctx, accounts["a1"], slice_s=5).stop_reason == "account_banned"
    [event] = events(capsys.readouterr().err)
    assert {k: event[k] for k in ("level", "account", "state", "reason")} == {
        "level": "ERROR",
        "account": "a1",
        "state": "banned",
        "reason": "account_banned",
    }
    assert "account a1 is now banned (account_banned)" in event["message"]


def test_a_cooldown_is_a_warning_event_saying_until_when(
    ctx: Context, capsys: pytest.CaptureFixture[str], logging_state: None
) -> None:
    accounts = add_accounts(ctx.engine, ["a1"])
    configure("json", "WARNING")
    health.throttled(ctx.engine, accounts["a1"], 30.0, "rate_limited")
    [event] = events(capsys.readouterr().err)
    assert (event["level"], event["state"], event["reason"]) == (
        "WARNING",
        "cooldown",
        "rate_limited",
    )
    until = datetime.fromisoformat(event["until"].removesuffix("Z"))
    assert utcnow() + timedelta(seconds=29) < until < utcnow() + timedelta(seconds=60)


def test_an_operator_pause_and_resume_are_info_events_the_command_already_reports(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    logging_state: None,
) -> None:
    monkeypatch.setenv("SIYU_LOG_FORMAT", "json")
    monkeypatch.setenv("SIYU_LOG_LEVEL", "INFO")
    with siyu_on(db_url, monkeypatch, capsys) as siyu:
        assert siyu("init").code == 0
        siyu("accounts", "add", "a1", "--channel", "memory")
        paused = siyu("accounts", "pause", "a1")
        resumed = siyu("accounts", "resume", "a1")
    assert (paused.code, paused.stdout.strip()) == (0, "paused account a1"), paused
    [event] = events(paused.stderr)
    assert (event["level"], event["account"], event["state"], event["reason"]) == (
        "INFO",
        "a1",
        "paused",
        "operator",
    )
    [event] = events(resumed.stderr)
    assert (event["level"], event["state"]) == ("INFO", "active")


def test_a_log_format_siyu_does_not_know_is_refused_with_its_name(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIYU_LOG_FORMAT", "xml")
    with siyu_on(db_url, monkeypatch, capsys) as siyu:
        line = one_error_line(siyu("accounts", "list"))
        helped = siyu("--help")
    assert "SIYU_LOG_FORMAT" in line and "'xml'" in line, line
    assert helped.code == 0, "the help needs no valid setting"


# --- Celery task events ----------------------------------------------------------------------


def test_workers_send_task_events_and_senders_the_sent_event(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    make_context(sqlite_url, redis_url, tmp_path)  # configures the Celery app
    assert celery_app.conf.worker_send_task_events is True
    assert celery_app.conf.task_send_sent_event is True


class Events:
    """Celery events on the broker, captured on a thread as Flower would see them."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.connection = celery_app.connection_for_read()
        self.receiver = EventReceiver(
            self.connection, handlers={"*": self.seen.append}, app=celery_app
        )
        self.thread = threading.Thread(target=self._capture, daemon=True)

    def _capture(self) -> None:
        self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> Events:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.receiver.should_stop = True
        self.thread.join(timeout=10)
        self.connection.release()

    def types(self) -> set[str]:
        return {e["type"] for e in list(self.seen)}


@pytest.mark.slow
def test_a_worker_logs_json_and_its_tasks_are_visible_as_events_on_the_broker(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    ctx = make_context(sqlite_url, redis_url, tmp_path)
    env = worker_env(ctx, sqlite_url, redis_url, {"memory": "[account]\n"}, SIYU_LOG_FORMAT="json")
    log = tmp_path / "worker.log"
    args = [sys.executable, "-m", "worker", "worker", "--concurrency", "1", "-l", "INFO"]
    with Events() as seen:
        worker = procs.spawn(args, env={**env, "PYTHONUNBUFFERED": "1"}, log=log, cwd=REPO)
        try:
            assert wait_for(lambda: "worker-online" in seen.types(), 60), log.read_text()
            celery_app.send_task("siyu.tick", queue=keys(ctx).queue)
            wanted = {"task-sent", "task-received", "task-started", "task-succeeded"}
            assert wait_for(lambda: wanted <= seen.types(), 60), (seen.types(), log.read_text())
            assert wait_for(lambda: "worker-heartbeat" in seen.types(), 30), seen.types()
        finally:
            procs.stop(worker, timeout_s=20)
    received = [e for e in seen.seen if e["type"] == "task-received"]
    assert any(e["name"] == "siyu.tick" for e in received)
    logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(r["logger"].startswith("celery") for r in logged), "Celery logs through siyu"
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in logged)


def test_a_formatter_that_shows_a_field_shows_it_masked() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s to=%(to)s"))
    handler.addFilter(MaskFilter())
    logger = logging.getLogger("test.logging.fields")
    logger.handlers, logger.propagate = [handler], False
    logger.warning("sent", extra={"to": OTHER_EMAIL})
    assert out.getvalue() == "sent to=l***@mail.example.org\n"
