"""No phone number or e-mail address reaches a log: a filter that masks them in every record.

`MaskFilter` sits on handlers, so it sees every record they write, whichever logger it came
from, after `msg % args` (`138****5678`: the first three and last four digits, at least four
digits hidden; `z***@example.com`: the first character of the mailbox and the domain). It
also masks exception and stack text and the string fields passed as `extra=` (which the
JSON format writes out), and drops SQLAlchemy's `[parameters: ...]`, which would carry
message bodies and external ids (its statement log,
which would too, stays at WARNING unless someone lowers the `sqlalchemy` logger). Message
bodies are otherwise kept out of logs at the call site: log ids, never texts.

Installed in every siyu process by `observability.logs.configure_logging` (on the one root
handler, and by `install()` on logging's last resort): the CLI (`cli.main`), the Celery
worker (`runtime.celery_app`, on Celery's `setup_logging` signal) and `siyu api`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

# A mainland mobile number, or `+` and 8-15 digits (E.164); never part of a longer number.
PHONE = re.compile(r"(?<!\d)(?:\+\d{8,15}|1[3-9]\d{9})(?!\d)")
# An e-mail address: a mailbox, `@`, and a domain with at least one dot.
EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@((?:[\w-]+\.)+[\w-]+)")
# SQLAlchemy's errors end a line with the statement's parameters: `[parameters: {...}]`.
SQL_PARAMETERS = re.compile(r"\[parameters: .*")
HIDDEN_PARAMETERS = "[parameters: hidden]"


def mask_phones(text: str) -> str:
    """`text` with every phone number masked: `13812345678` -> `138****5678`."""
    return PHONE.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    number = match.group()
    plus = "+" if number.startswith("+") else ""
    digits = number.removeprefix("+")
    head = max(0, min(3, len(digits) - 8))  # keep at most 3, hide at least 4
    return f"{plus}{digits[:head]}{'*' * (len(digits) - head - 4)}{digits[-4:]}"


def mask_emails(text: str) -> str:
    """`text` with every e-mail address masked: `zhang.san@example.com` -> `z***@example.com`."""
    return EMAIL.sub(r"\1***@\2", text)


def mask_text(text: str) -> str:
    """Phones and e-mail addresses masked, SQL parameters dropped."""
    return mask_phones(mask_emails(SQL_PARAMETERS.sub(HIDDEN_PARAMETERS, text)))


# The attributes every record has; anything else on a record came from `extra=`.
RECORD_FIELDS = frozenset(
    [*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime", "taskName"]
)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call passed as `extra=` (`event`, `account`, ...), by name."""
    return {k: v for k, v in vars(record).items() if k not in RECORD_FIELDS}


class MaskFilter(logging.Filter):
    """Masks the record in place (every later handler sees it masked) and never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    # Arguments that do not fit the format (any error): logging would print them raw.
    except Exception:  # noqa: BLE001
        record.msg = mask_text(f"{record.msg} (log arguments that do not fit the format)")
        record.args = None
    else:
        if mask_text(message) != message:
            _mask_message(record, message)
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_text(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info)
    for name, value in extra_fields(record).items():
        if isinstance(value, str):
            setattr(record, name, mask_text(value))


def _mask_message(record: logging.LogRecord, message: str) -> None:
    """Mask the string arguments, so that formatters which read `args` (uvicorn's access log)
    keep working; if that does not hide everything, the record becomes its masked text."""
    if isinstance(record.args, tuple):
        record.args = tuple(mask_text(a) if isinstance(a, str) else a for a in record.args)
        with contextlib.suppress(Exception):
            again = record.getMessage()
            if mask_text(again) == again:
                return
    record.msg, record.args = mask_text(message), None


def mask_handlers(logger: logging.Logger) -> None:
    """Add the filter to every handler of `logger` that lacks one."""
    for handler in logger.handlers:
        add_filter(handler)


def add_filter(handler: logging.Handler) -> None:
    if not any(isinstance(f, MaskFilter) for f in handler.filters):
        handler.addFilter(MaskFilter())


def install() -> None:
    """Mask what this process logs now: the root logger's handlers and logging's last resort
    (the handler used while nothing is configured). Idempotent."""
    mask_handlers(logging.getLogger())
    if logging.lastResort is not None:
        add_filter(logging.lastResort)
