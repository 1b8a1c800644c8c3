"""The Celery application. Messages are only triggers; the database is the source of truth."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

from worker import logmask

celery_app = Celery("siyu", include=["worker.tasks"])


@after_setup_logger.connect(weak=False)
def _mask_worker_logs(logger: logging.Logger, **_: Any) -> None:
    """No phone number in what the worker logs, and no SQL parameters (issue 9, item 8)."""
    logmask.mask_handlers(logger)


@after_setup_task_logger.connect(weak=False)
def _mask_task_logs(logger: logging.Logger, **_: Any) -> None:
    logmask.mask_handlers(logger)  # `celery.task` writes through its own handlers


def celery_broker_url(redis_url: str) -> str:
    """Celery's spelling of a redis-py URL: `unix://P?db=N` is `redis+socket://P?virtual_host=N`.

    kombu has no `unix://` transport. Every other URL (`redis://`, `rediss://`, one already
    in Celery's form) is returned unchanged, so converting twice is harmless.
    """
    if not redis_url.startswith("unix://"):
        return redis_url
    path, _, query = redis_url[len("unix://") :].partition("?")
    params = [("virtual_host" if k == "db" else k, v) for k, v in parse_qsl(query)]
    return f"redis+socket://{path}" + (f"?{urlencode(params)}" if params else "")


def configure_celery(broker_url: str, *, visibility_timeout_s: int) -> Celery:
    """Apply the settings that matter for crash safety (DESIGN decision 10).

    `broker_url` may be in redis-py's form too (`unix://...`): every Redis URL that reaches
    Celery passes through `celery_broker_url` here.
    """
    celery_app.conf.update(
        broker_url=celery_broker_url(broker_url),
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_default_queue="siyu",
        enable_utc=True,
    )
    return celery_app
