"""The logging of every siyu process, configured by siyu itself with `dictConfig`.

One configuration for the CLI (`cli.main`), the Celery worker (`runtime.celery_app`, on
Celery's `setup_logging` signal, so Celery leaves the root logger alone) and `siyu api`
(handed to uvicorn): one handler on the root logger, writing to stderr through
`logmask.MaskFilter`, in the format `SIYU_LOG_FORMAT` names. `text` is a line a person reads;
`json` is one object per line (`ts`, `level`, `logger`, `message`, then every field passed as
`extra=`, e.g. `event`, `account`, `state`, `reason`), for a log collector.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from worker import logmask
from worker.config import Settings
from worker.logmask import extra_fields, mask_emails, mask_phones

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEFAULT_LEVEL = "WARNING"
# Loggers that libraries configure on their own (uvicorn's dictConfig, Celery's task logger):
# reset to write through the root handler, so that every line is masked and formatted alike.
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task")
# Fields some libraries add to records that only repeat the message (uvicorn's coloured copy).
NOT_FIELDS = frozenset({"color_message"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the record has been masked by the handler's filter."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in extra_fields(record).items():
            if name not in NOT_FIELDS and name not in doc:
                doc[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        # The filter masked the text and the string fields; this catches a phone or an
        # address inside a structured field (a dict a library passed as `extra=`).
        return mask_emails(mask_phones(json.dumps(doc, ensure_ascii=False, default=str)))


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record arrives (as logging's last resort
    does), not the stream of the moment it was configured: a CLI run inside a test, or a
    process that replaces its stderr, keeps logging to the live stream."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)
        self._stream: TextIO | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self._stream = value


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """The `dictConfig` document: the root logger at `level` through one masked handler."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask": {"()": "worker.logmask.MaskFilter"}},
        "formatters": {"siyu": formatter},
        "handlers": {
            "stderr": {
                "class": f"{__name__}.StderrHandler",
                "formatter": "siyu",
                "filters": ["mask"],
            }
        },
        "loggers": {name: {"handlers": [], "propagate": True} for name in LIBRARY_LOGGERS},
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


def level_of(settings: Settings, option: str | int | None = None) -> str:
    """A command's own level option if given, else `SIYU_LOG_LEVEL`, else WARNING."""
    if isinstance(option, int):
        return logging.getLevelName(option)
    return (option or settings.log_level or DEFAULT_LEVEL).upper()


def configure_logging(settings: Settings, level: str | int | None = None) -> dict[str, Any]:
    """Configure this process's logging; returns the document (uvicorn applies it again)."""
    config = log_config(settings.log_format, level_of(settings, level))
    logging.config.dictConfig(config)
    logmask.install()  # logging's last resort too: a logger that reaches no handler uses it
    return config
