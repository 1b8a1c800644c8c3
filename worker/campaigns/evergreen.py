"""Evergreen runs: each run of a cron campaign messages only the segment's members that the
campaign has not messaged before ("yesterday's new sign-ups, at 10:00 every day").

A member counts as messaged once an earlier run of the campaign holds a delivery row for
them, in any state but `skipped` for a reason that ran out rather than ruled them out
(`RETRYABLE`: the run's window closed, a recipient cap was full): those are tried again by
the next run. Opted-out, failed and ambiguous (`unknown`) members are not tried again.
The test is a correlated NOT EXISTS on the contact's deliveries (indexed by contact id).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select

from worker.store import tables
from worker.store.models import DeliveryState

RETRYABLE = ("window_closed", "frequency_cap")
CT = tables.contacts.c
D = tables.deliveries.c
R = tables.campaign_runs.c


def not_messaged(campaign_id: int, run_id: int) -> ColumnElement[Any]:
    """SQL true for a contact no other run of `campaign_id` has messaged or ruled out."""
    other_runs = select(R.id).where(R.campaign_id == campaign_id, R.id != run_id)
    retryable = and_(
        D.state == DeliveryState.SKIPPED.value,
        func.coalesce(D.reason, "").in_(RETRYABLE),
    )
    return ~exists().where(D.contact_id == CT.id, D.run_id.in_(other_runs), ~retryable)
