"""The Celery application. Messages are only triggers; the database is the source of truth."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from celery import Celery
from celery.signals import setup_logging

from worker.config import get_settings
from worker.observability.logs import configure_logging

celery_app = Celery("siyu", include=["worker.tasks"])


@setup_logging.connect(weak=False)
def _configure_worker_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """siyu configures the worker's logging (format, masking) instead of Celery, at the
    level of `--loglevel`; Celery then leaves the root logger and its own loggers alone."""
    configure_logging(get_settings(), loglevel)


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
        # Task events (and the heartbeats `siyu worker` sends): Flower, or `celery events`,
        # pointed at the same broker sees the workers and every task they run.
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_redirect_stdouts=False,
        task_default_queue="siyu",
        enable_utc=True,
    )
    return celery_app
