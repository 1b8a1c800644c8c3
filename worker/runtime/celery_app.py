"""The Celery application. Messages are only triggers; the database is the source of truth."""

from __future__ import annotations

from celery import Celery

celery_app = Celery("siyu", include=["worker.tasks"])


def configure_celery(broker_url: str, *, visibility_timeout_s: int) -> Celery:
    """Apply the settings that matter for crash safety (DESIGN decision 10)."""
    celery_app.conf.update(
        broker_url=broker_url,
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
