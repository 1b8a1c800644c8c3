"""Follow up sends a platform holds until a person confirms them (WeCom customer mass-send).

Such a send comes back as a `SendResult` with `confirmed=False`: the row is `sent` with reason
`awaiting_confirmation` and the platform's task id as its `provider_message_id`, so nothing
sends it again and the recipient caps count it. The tick then asks the channel, at most once
per `SIYU_CONFIRMATION_SYNC_S` (a minute), what became of each recipient
(`Channel.confirmations`):

    delivered                the reason is cleared: an ordinary `sent` row
    refused (a ChannelError) `failed` with the error's code, e.g. `recipient_unreachable`
    still waiting            unchanged, asked again next time
    still waiting after `CONFIRM_WAIT`
                             `failed` with reason `not_confirmed`: the member never sent it

Every update is a compare-and-set on the `awaiting_confirmation` reason, so two ticks (or a
tick racing an operator) settle a row once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, and_, bindparam, select, update

from worker.channels.base import Channel, SendResult
from worker.channels.errors import ChannelError
from worker.channels.registry import build_channel
from worker.dispatch import runs
from worker.dispatch.keys import keys
from worker.dispatch.sending import AWAITING
from worker.errors import UserError
from worker.runtime import Context
from worker.store import tables
from worker.store.models import DeliveryState, utcnow

log = logging.getLogger(__name__)
D = tables.deliveries.c
CT = tables.contacts.c

NOT_CONFIRMED = "not_confirmed"
# Ours, not the platform's: a task its member has not sent within this long is given up on.
CONFIRM_WAIT = timedelta(days=3)


@dataclass
class SyncReport:
    delivered: int = 0
    refused: int = 0
    expired: int = 0
    waiting: int = 0


def sync_due(ctx: Context) -> SyncReport | None:
    """`sync` at most once per `SIYU_CONFIRMATION_SYNC_S` across the cluster; None when not
    due."""
    every_ms = int(ctx.settings.confirmation_sync_s * 1000)
    if not ctx.redis.set(keys(ctx).confirmations, "1", nx=True, px=every_ms):
        return None
    return sync(ctx.engine)


def sync(engine: Engine) -> SyncReport:
    """Ask every account with held sends about them and record the answers."""
    report = SyncReport()
    report.expired = _expire(engine)
    for account_id, task_ids in _held_tasks(engine).items():
        channel = _channel(engine, account_id)
        if channel is None:
            continue
        try:
            for task_id in task_ids:
                _sync_task(engine, channel, account_id, task_id, report)
        finally:
            channel.close()
    if report.delivered or report.refused or report.expired:
        log.info("held sends followed up: %s", report)
    return report


def _held_tasks(engine: Engine) -> dict[int, list[str]]:
    stmt = (
        select(D.account_id, D.provider_message_id)
        .where(D.reason == AWAITING, D.state == DeliveryState.SENT)
        .distinct()
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    tasks: dict[int, list[str]] = defaultdict(list)
    for account_id, task_id in rows:
        if account_id is not None and task_id:
            tasks[account_id].append(task_id)
    return tasks


def _channel(engine: Engine, account_id: int) -> Channel | None:
    account = runs.load_account(engine, account_id)
    if account is None:
        return None
    try:
        channel = build_channel(account.channel, account.name, account.config)
    except UserError as exc:
        log.warning("account %s: held sends not followed up: %s", account.name, exc)
        return None
    if not channel.awaits_confirmation:  # reconfigured since: nothing to ask it
        channel.close()
        return None
    return channel


def _sync_task(
    engine: Engine, channel: Channel, account_id: int, task_id: str, report: SyncReport
) -> None:
    held = _held_rows(engine, account_id, task_id)
    try:  # another tick may settle some of `held` meanwhile: `_record` is a compare-and-set
        answers = channel.confirmations(task_id)
    except ChannelError as exc:
        log.warning("account %s: task %s not followed up yet: %s", channel.account, task_id, exc)
        return
    delivered, refused = [], []
    for delivery_id, external_id in held:
        answer = answers.get(external_id)
        if isinstance(answer, SendResult):
            delivered.append(delivery_id)
        elif isinstance(answer, ChannelError):
            refused.append((delivery_id, answer))
        else:
            report.waiting += 1
    report.delivered += _record(engine, [(i, None, None) for i in delivered], DeliveryState.SENT)
    report.refused += _record(
        engine,
        [(i, exc.code, f"{type(exc).__name__}: {exc}"[:300]) for i, exc in refused],
        DeliveryState.FAILED,
    )


def _held_rows(engine: Engine, account_id: int, task_id: str) -> list[tuple[int, str]]:
    stmt = (
        select(D.id, CT.external_id)
        .join(tables.contacts, CT.id == D.contact_id)
        .where(
            D.account_id == account_id,
            D.provider_message_id == task_id,
            D.reason == AWAITING,
            D.state == DeliveryState.SENT,
        )
    )
    with engine.connect() as conn:
        return [(row[0], row[1]) for row in conn.execute(stmt)]


def _record(
    engine: Engine, rows: Sequence[tuple[int, str | None, str | None]], state: DeliveryState
) -> int:
    """Settle held rows (id, reason, error) into `state`, each only if still held."""
    if not rows:
        return 0
    stmt = (
        update(tables.deliveries)
        .where(and_(D.id == bindparam("b_id"), D.reason == AWAITING, D.state == DeliveryState.SENT))
        .values(
            state=state,
            reason=bindparam("b_reason"),
            last_error=bindparam("b_error"),
            updated_at=utcnow(),
        )
    )
    params = [{"b_id": i, "b_reason": reason, "b_error": error} for i, reason, error in rows]
    with engine.begin() as conn:
        return int(conn.execute(stmt, params).rowcount or 0)


def _expire(engine: Engine) -> int:
    """Held rows older than `CONFIRM_WAIT` fail as `not_confirmed`."""
    stmt = (
        update(tables.deliveries)
        .where(
            D.reason == AWAITING,
            D.state == DeliveryState.SENT,
            D.sent_at < utcnow() - CONFIRM_WAIT,
        )
        .values(state=DeliveryState.FAILED, reason=NOT_CONFIRMED, updated_at=utcnow())
    )
    with engine.begin() as conn:
        return int(conn.execute(stmt).rowcount or 0)
