"""Settle rows whose lane is gone (DESIGN decision 5): never twice, never silently lost.

A `claimed` row of a dead lane goes back to `pending` (nothing was sent). A `sending` row is
ambiguous: where the channel can look a send up by idempotency key we ask and settle it
(accepted -> `sent`; not accepted -> `pending`, safe to resend with the same key); otherwise
it becomes `unknown` and is reported, never resent automatically.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select

from worker.channels.base import Channel
from worker.channels.errors import ChannelError
from worker.channels.registry import build_channel
from worker.dispatch import outbox, runs
from worker.dispatch.compose import idempotency_key
from worker.dispatch.keys import keys
from worker.dispatch.lease import holder
from worker.dispatch.outbox import Outcome
from worker.dispatch.sending import retry_later
from worker.errors import UserError
from worker.runtime import Context
from worker.store import tables
from worker.store.db import installation_id
from worker.store.models import DeliveryState

log = logging.getLogger(__name__)
D = tables.deliveries.c


@dataclass
class ReconcileReport:
    requeued: int = 0
    looked_up_sent: int = 0
    looked_up_pending: int = 0
    unknown: int = 0


def dead_owners(ctx: Context) -> set[str | None]:
    """Owners of rows whose database lease has passed and who no longer hold their lane.

    Both must hold (DESIGN 13): a live lane extends its rows' lease with every renewal of its
    Redis lease, and a lane that lost the Redis lease stops before its next send, within the
    rows' lease. So a row a live lane holds is never handed to anyone else.
    """
    names = keys(ctx)
    dead: set[str | None] = set()
    for owner, account_id in outbox.expired_leases(ctx.engine):
        if (
            owner is None
            or account_id is None
            or holder(ctx.redis, names.lane(account_id)) != owner
        ):
            dead.add(owner)
    return dead


def reconcile(ctx: Context) -> ReconcileReport:
    report = ReconcileReport()
    for owner in dead_owners(ctx):
        report.requeued += outbox.requeue_claimed(ctx.engine, owner)
        _settle_sending(ctx, owner, report)
    if report.requeued or report.looked_up_sent or report.looked_up_pending or report.unknown:
        log.info("reconciled expired leases: %s", report)
    return report


def _settle_sending(ctx: Context, owner: str | None, report: ReconcileReport) -> None:
    rows = outbox.stuck_sending(ctx.engine, owner)
    by_account: dict[int | None, list[int]] = defaultdict(list)
    for delivery_id, account_id in rows:
        by_account[account_id].append(delivery_id)
    for account, ids in by_account.items():
        channel = _channel_for(ctx, account)
        outcomes = _lookup_all(ctx, channel, ids, report)
        outbox.settle(ctx.engine, outcomes, owner)
        if channel is not None:
            channel.close()


def _channel_for(ctx: Context, account_id: int | None) -> Channel | None:
    if account_id is None:
        return None
    account = runs.load_account(ctx.engine, account_id)
    if account is None:
        return None
    try:
        return build_channel(account.channel, account.name, account.config)
    except UserError:
        return None


def _lookup_all(
    ctx: Context, channel: Channel | None, ids: list[int], report: ReconcileReport
) -> list[Outcome]:
    rows = _rows(ctx, ids)
    outcomes: list[Outcome] = []
    for delivery_id in ids:
        if channel is None or not channel.can_lookup:
            outcomes.append(Outcome(delivery_id, DeliveryState.UNKNOWN, reason="ambiguous_send"))
            report.unknown += 1
            continue
        key, attempts = rows[delivery_id]
        try:
            found = channel.lookup(key)
        except ChannelError:
            continue  # ask again on the next tick
        if found is not None:
            outcomes.append(Outcome(delivery_id, DeliveryState.SENT, message_id=found.message_id))
            report.looked_up_sent += 1
        else:  # known not accepted: safe to resend with the same key, later, a bounded number
            limit = ctx.settings.max_attempts
            outcomes.append(retry_later(delivery_id, attempts, limit, "lease expired, not sent"))
            report.looked_up_pending += 1
    return outcomes


def _rows(ctx: Context, ids: list[int]) -> dict[int, tuple[str, int]]:
    """delivery id -> (idempotency key, attempts so far)."""
    installation = installation_id(ctx.engine)
    stmt = select(D.id, D.run_id, D.contact_id, D.message_id, D.attempts).where(D.id.in_(ids))
    with ctx.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {r[0]: (idempotency_key(installation, r[1], r[2], r[3]), r[4]) for r in rows}
