"""The naive baseline of `bench/throughput.py`: one Celery task per message.

    celery -A bench._naive worker --pool threads --concurrency C --queues naive

What a reasonable engineer writes first: the producer calls `send.delay(delivery_id)` for every
pending delivery, and the task loads that row with its contact, renders the campaign template
with the same `MessageRenderer` (compiled once per process and run), sends through a
`MemoryChannel` and commits `sent` in its own transaction. Celery keeps its defaults except
what any production app sets: JSON, no result backend, its own queue. It reads the same
`SIYU_*` settings as a siyu worker (database, Redis, templates directory).
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery
from sqlalchemy import Engine, Table, select, update

from worker.channels.base import OutboundMessage
from worker.channels.memory import MemoryChannel
from worker.config import Settings, get_settings
from worker.dispatch.compose import idempotency_key
from worker.render import MessageRenderer, RecipientView
from worker.store.db import get_engine, installation_id, tracking_secret
from worker.store.models import (
    Account,
    Campaign,
    CampaignRun,
    Contact,
    Delivery,
    DeliveryState,
    utcnow,
)

QUEUE = "naive"
DELIVERIES: Table = Delivery.__table__  # type: ignore[attr-defined]
CONTACTS: Table = Contact.__table__  # type: ignore[attr-defined]
ACCOUNTS: Table = Account.__table__  # type: ignore[attr-defined]
RUNS: Table = CampaignRun.__table__  # type: ignore[attr-defined]
CAMPAIGNS: Table = Campaign.__table__  # type: ignore[attr-defined]
D, CT, A, R, C = (t.c for t in (DELIVERIES, CONTACTS, ACCOUNTS, RUNS, CAMPAIGNS))


def _celery_config() -> dict[str, Any]:
    """Read when Celery first needs its configuration, not at import time.

    The broker is `SIYU_REDIS_URL`; a producer may set `app.conf.broker_url` instead.
    """
    return {
        "broker_url": get_settings().redis_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": QUEUE,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
    }


app = Celery("naive", set_as_current=False)
app.add_defaults(_celery_config)

_lock = threading.Lock()
_renderers: dict[int, MessageRenderer] = {}
_channels: dict[str, MemoryChannel] = {}


def _renderer(engine: Engine, settings: Settings, run_id: int) -> MessageRenderer:
    """The run's template, compiled once per process."""
    with _lock:
        cached = _renderers.get(run_id)
    if cached is not None:
        return cached
    stmt = select(C.name, C.template, C.vars).join(RUNS, R.campaign_id == C.id)
    with engine.connect() as conn:
        name, template, variables = conn.execute(stmt.where(R.id == run_id)).one()
    renderer = MessageRenderer(
        settings.templates_dir, template, dict(variables), campaign=name,
        channel=MemoryChannel.scheme,
        tracking_secret=tracking_secret(engine, settings.tracking_secret),
    )  # fmt: skip
    with _lock:
        return _renderers.setdefault(run_id, renderer)


def _channel(account: str) -> MemoryChannel:
    with _lock:
        channel = _channels.get(account)
        if channel is None:
            channel = _channels[account] = MemoryChannel(account)
        return channel


_LOAD = (
    select(D.state, D.run_id, D.contact_id, A.name, CT.external_id, CT.name, CT.tags, CT.attrs)
    .select_from(DELIVERIES)
    .join(CONTACTS, CT.id == D.contact_id)
    .join(ACCOUNTS, A.id == D.account_id)
)


@app.task(name="naive.send")
def send(delivery_id: int) -> None:
    """Send one delivery and commit `sent`; a row that is no longer pending is left alone."""
    settings = get_settings()
    engine = get_engine(settings.database_url)
    with engine.connect() as conn:
        row = conn.execute(_LOAD.where(D.id == delivery_id)).first()
    if row is None or row[0] != DeliveryState.PENDING:
        return
    _state, run_id, contact_id, account, external_id, name, tags, attrs = row
    view = RecipientView(contact_id, external_id, name or "", tuple(tags or ()), attrs or {})
    text = _renderer(engine, settings, run_id).render(view)
    key = idempotency_key(installation_id(engine), run_id, contact_id)
    result = _channel(account).send(OutboundMessage(external_id, text, key))
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            update(Delivery)
            .where(D.id == delivery_id, D.state == DeliveryState.PENDING)
            .values(
                state=DeliveryState.SENT,
                attempts=D.attempts + 1,
                sent_at=now,
                provider_message_id=result.message_id,
                updated_at=now,
            )
        )
