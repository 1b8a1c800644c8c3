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
from worker.dispatch.lease import holder, lane_key
from worker.dispatch.outbox import Outcome
from worker.errors import UserError
from worker.runtime import Context
from worker.store import tables
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
    """Lease owners of open rows whose lane no longer holds its Redis lease (or expired)."""
    dead: set[str | None] = set(outbox.expired_owners(ctx.engine))
    for owner, account_id in outbox.open_leases(ctx.engine):
        if owner is None or account_id is None or holder(ctx.redis, lane_key(account_id)) != owner:
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
    keys = _keys(ctx, ids)
    outcomes: list[Outcome] = []
    for delivery_id in ids:
        if channel is None or not channel.supports_idempotency_lookup:
            outcomes.append(Outcome(delivery_id, DeliveryState.UNKNOWN, reason="ambiguous_send"))
            report.unknown += 1
            continue
        try:
            found = channel.lookup(keys[delivery_id])
        except ChannelError:
            continue  # ask again on the next tick
        if found is not None:
            outcomes.append(Outcome(delivery_id, DeliveryState.SENT, message_id=found.message_id))
            report.looked_up_sent += 1
        else:
            outcomes.append(Outcome(delivery_id, DeliveryState.PENDING, error="lease expired"))
            report.looked_up_pending += 1
    return outcomes


def _keys(ctx: Context, ids: list[int]) -> dict[int, str]:
    stmt = select(D.id, D.run_id, D.contact_id).where(D.id.in_(ids))
    with ctx.engine.connect() as conn:
        return {r[0]: idempotency_key(r[1], r[2]) for r in conn.execute(stmt)}
