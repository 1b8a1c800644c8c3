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
                             the task is withdrawn (`Channel.withdraw`), so the member can no
                             longer send it, then asked about one last time; whoever it has
                             not reached fails with reason `not_confirmed`

A task that cannot be withdrawn (the platform refuses, the channel cannot, the account was
removed, its config no longer builds or no longer holds sends) still fails as `not_confirmed`
after `CONFIRM_WAIT`, but its `last_error` says the member may still send it.

Every update is a compare-and-set on the `awaiting_confirmation` reason, so two ticks (or a
tick racing an operator) settle a row once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, Engine, and_, bindparam, case, func, select, update

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
GIVEN_UP = "not confirmed within 3 days"
MAY_STILL_SEND = "the member may still send it"


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
    """Ask every account with held sends about them, record the answers and give up on tasks
    held longer than `CONFIRM_WAIT`."""
    report = SyncReport()
    for account_id, tasks in _held_tasks(engine).items():
        channel = _channel(engine, account_id)
        try:
            for task_id, overdue in tasks.items():
                _follow_up(engine, channel, account_id, task_id, overdue, report)
        finally:
            if isinstance(channel, Channel):
                channel.close()
    if report.delivered or report.refused or report.expired:
        log.info("held sends followed up: %s", report)
    return report


def _held_tasks(engine: Engine) -> dict[int | None, dict[str | None, bool]]:
    """account id -> task id -> whether a held row of it is older than `CONFIRM_WAIT`."""
    older = D.sent_at < utcnow() - CONFIRM_WAIT
    stmt = (
        select(D.account_id, D.provider_message_id, func.max(case((older, 1), else_=0)))
        .where(D.reason == AWAITING, D.state == DeliveryState.SENT)
        .group_by(D.account_id, D.provider_message_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    tasks: dict[int | None, dict[str | None, bool]] = defaultdict(dict)
    for account_id, task_id, overdue in rows:
        tasks[account_id][task_id] = bool(overdue)
    return tasks


def _channel(engine: Engine, account_id: int | None) -> Channel | str:
    """The account's channel, or why none can follow its held sends up."""
    account = None if account_id is None else runs.load_account(engine, account_id)
    if account is None:
        return "the account was removed"
    try:
        channel = build_channel(account.channel, account.name, account.config)
    except UserError as exc:
        log.warning("account %s: held sends not followed up: %s", account.name, exc)
        return f"the account's config is unusable ({exc})"
    if not channel.awaits_confirmation:  # reconfigured since: nothing to ask it
        channel.close()
        return "the account no longer holds sends for confirmation (reconfigured)"
    return channel


def _follow_up(
    engine: Engine,
    channel: Channel | str,
    account_id: int | None,
    task_id: str | None,
    overdue: bool,
    report: SyncReport,
) -> None:
    """One task: asked about; withdrawn and given up on once overdue. When nothing can ask
    (`channel` says why), it waits until overdue and is given up on without a withdrawal."""
    if isinstance(channel, str) or account_id is None or not task_id:
        if overdue:
            why = channel if isinstance(channel, str) else "the send has no task id"
            error = f"{GIVEN_UP}; {MAY_STILL_SEND}: {why}"
            report.expired += _give_up(engine, account_id, task_id, error)
    elif overdue:
        _withdraw(engine, channel, account_id, task_id, report)
    else:
        report.waiting += _sync_task(engine, channel, account_id, task_id, report) or 0


def _withdraw(
    engine: Engine, channel: Channel, account_id: int, task_id: str, report: SyncReport
) -> None:
    """Give up on an overdue task: withdraw it, so that what the last look finds is final,
    record that, and fail whoever is still held."""
    problem = None
    try:
        channel.withdraw(task_id)
    except NotImplementedError:
        problem = f"channel {channel.scheme!r} cannot withdraw a held send"
    except ChannelError as exc:
        problem = f"the task could not be withdrawn ({type(exc).__name__}: {exc})"
    read = _sync_task(engine, channel, account_id, task_id, report) is not None
    if problem is not None:
        error = f"{GIVEN_UP}; {MAY_STILL_SEND}: {problem}"
    elif not read:
        error = f"{GIVEN_UP}; the task was withdrawn, but its last results could not be read: "
        error += "the member may have sent it just before"
    else:
        error = f"{GIVEN_UP}; the task was withdrawn"
    report.expired += _give_up(engine, account_id, task_id, error, withdrawn=problem is None)


def _sync_task(
    engine: Engine, channel: Channel, account_id: int, task_id: str, report: SyncReport
) -> int | None:
    """Record what the platform says of the task's held rows; returns how many still wait
    (None: it could not be asked)."""
    held = _held_rows(engine, account_id, task_id)
    try:  # another tick may settle some of `held` meanwhile: `_record` is a compare-and-set
        answers = channel.confirmations(task_id)
    except ChannelError as exc:
        log.warning("account %s: task %s not followed up yet: %s", channel.account, task_id, exc)
        return None
    delivered, refused, waiting = [], [], 0
    for delivery_id, external_id in held:
        answer = answers.get(external_id)
        if isinstance(answer, SendResult):
            delivered.append(delivery_id)
        elif isinstance(answer, ChannelError):
            refused.append((delivery_id, answer))
        else:
            waiting += 1
    report.delivered += _record(engine, [(i, None, None) for i in delivered], DeliveryState.SENT)
    report.refused += _record(
        engine,
        [(i, exc.code, f"{type(exc).__name__}: {exc}"[:300]) for i, exc in refused],
        DeliveryState.FAILED,
    )
    return waiting


def _held_rows(engine: Engine, account_id: int, task_id: str) -> list[tuple[int, str]]:
    stmt = (
        select(D.id, CT.external_id)
        .join(tables.contacts, CT.id == D.contact_id)
        .where(_of_task(account_id, task_id))
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


def _give_up(
    engine: Engine,
    account_id: int | None,
    task_id: str | None,
    error: str,
    *,
    withdrawn: bool = False,
) -> int:
    """Fail the task's still-held rows as `not_confirmed`, with `error` saying first whether
    the member may still send it (a warning too, unless the task was `withdrawn`)."""
    stmt = (
        update(tables.deliveries)
        .where(_of_task(account_id, task_id))
        .values(
            state=DeliveryState.FAILED,
            reason=NOT_CONFIRMED,
            last_error=error[:300],
            updated_at=utcnow(),
        )
    )
    with engine.begin() as conn:
        given_up = int(conn.execute(stmt).rowcount or 0)
    if given_up and not withdrawn:
        log.warning("account id %s, task %s: %s", account_id, task_id, error)
    return given_up


def _of_task(account_id: int | None, task_id: str | None) -> ColumnElement[bool]:
    """The held rows of one task (NULL matched as NULL: a removed account's rows)."""
    return and_(
        D.account_id.is_(None) if account_id is None else D.account_id == account_id,
        D.provider_message_id.is_(None) if task_id is None else D.provider_message_id == task_id,
        D.reason == AWAITING,
        D.state == DeliveryState.SENT,
    )
