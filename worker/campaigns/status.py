"""`campaigns status` and the per-recipient log (`campaigns deliveries`).

The status document is the contract's plus the `window` of `campaigns list` (start, end and
the campaign's `tz`), so that a person sees the window and the ETA in the campaign's zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, or_, select
from sqlmodel import Session

from worker.campaigns import lookup
from worker.campaigns.overview import window_of
from worker.campaigns.timeparse import iso_utc
from worker.errors import UserError
from worker.store import tables, tallies
from worker.store.models import (
    Account,
    Campaign,
    CampaignRun,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryState,
    utcnow,
)

D = tables.deliveries.c
A = tables.accounts.c
CT = tables.contacts.c
REPORTED = ("pending", "sent", "failed", "skipped", "unknown")
ETA_WINDOW_S = 60


def _bucket(state: str) -> str:
    return "pending" if state in (DeliveryState.CLAIMED, DeliveryState.SENDING) else state


def _counts(engine: Engine, run: CampaignRun) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """The run's counts, in all and per account, from the tallies (`store.tallies`)."""
    assert run.id is not None
    counts = dict.fromkeys(REPORTED, 0)
    accounts: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        by_key = tallies.run_counts(conn, [run.id])[run.id]
        ids = {account_id for account_id, _state in by_key if account_id is not None}
        names = {
            id_: (name, state)
            for id_, name, state in conn.execute(select(A.id, A.name, A.state).where(A.id.in_(ids)))
        }
    for (account_id, state), n in by_key.items():
        bucket = _bucket(state)
        counts[bucket] += n
        if account_id not in names:
            continue
        name, account_state = names[account_id]
        entry = accounts.setdefault(name, {"sent": 0, "pending": 0, "state": account_state})
        if bucket in ("sent", "pending"):
            entry[bucket] += n
    return counts, accounts


def _eta(engine: Engine, run: CampaignRun, remaining: int) -> str | None:
    """From the run's sends of the last minute or two (whole minutes of the tallies)."""
    if run.id is None or run.status != CampaignStatus.RUNNING or remaining <= 0:
        return None
    now = utcnow()
    since = (now - timedelta(seconds=ETA_WINDOW_S)).replace(second=0, microsecond=0)
    with engine.connect() as conn:
        per_minute = tallies.sent_per_minute(conn, since, [run.id])
    recent = sum(n for minutes in per_minute.values() for n in minutes.values())
    if recent == 0:
        return None
    window_s = (now - since).total_seconds()
    return iso_utc(now + timedelta(seconds=remaining * window_s / recent))


def campaign_status(engine: Engine, name: str) -> dict[str, Any]:
    """The contract's status document; every segment member is in exactly one count."""
    with Session(engine, expire_on_commit=False) as session:
        campaign = lookup.campaign_by_name(session, name)
        run = lookup.latest_run(session, campaign.id)  # type: ignore[arg-type]
        senders = lookup.campaign_accounts(session, campaign.id)  # type: ignore[arg-type]
    accounts = {a.name: {"sent": 0, "pending": 0, "state": a.state} for a in senders}
    doc: dict[str, Any] = {
        "name": campaign.name,
        "status": campaign.status,
        "total": 0,
        "counts": dict.fromkeys(REPORTED, 0),
        "accounts": accounts,
        "eta": None,
        "window": window_of(campaign, run),
    }
    if run is None or run.started_at is None:
        return doc
    counts, by_account = _counts(engine, run)
    for account_name, entry in by_account.items():
        accounts.setdefault(account_name, entry).update(entry)
    total = sum(counts.values())
    if not run.materialised and run.status != CampaignStatus.CANCELLED:
        counts["pending"] += max(0, run.expected_total - total)
        total = max(total, run.expected_total)
    doc.update(total=total, counts=counts, eta=_eta(engine, run, counts["pending"]))
    return doc


DELIVERY_KEYS = (
    "external_id",
    "name",
    "channel",
    "account",
    "status",
    "reason",
    "attempts",
    "last_error",
    "provider_message_id",
    "updated_at",
    "sent_at",
)


def check_delivery_state(state: str | None) -> None:
    """A `--status` filter must name a delivery state."""
    if state is not None and state not in {s.value for s in DeliveryState}:
        known = ", ".join(s.value for s in DeliveryState)
        raise UserError(f"--status must be one of {known}, got {state!r}")


def latest_run_of(engine: Engine, name: str) -> tuple[Campaign, CampaignRun | None]:
    """The campaign named `name` and its latest run (None before the first start)."""
    with Session(engine, expire_on_commit=False) as session:
        campaign = lookup.campaign_by_name(session, name)
        return campaign, lookup.latest_run(session, campaign.id)  # type: ignore[arg-type]


def delivery_rows(
    engine: Engine,
    run_id: int,
    state: str | None = None,
    limit: int | None = None,
    *,
    account: str | None = None,
    search: str | None = None,
    after: int | None = None,
    with_id: bool = False,
) -> Iterator[dict[str, Any]]:
    """A run's deliveries as `DELIVERY_KEYS` dicts in id order, streamed; times naive UTC.

    Filters: `state`; `account` (a sender's name); `search`, a case-insensitive substring of
    the contact's external_id or name; `after`, a delivery id (keyset: only rows after it, so
    a page costs the same at the millionth row as at the first). `with_id` adds each row's
    delivery `id` (the cursor for `after`).
    """
    stmt = (
        select(
            CT.external_id,
            CT.name,
            CT.channel,
            A.name,
            D.state,
            D.reason,
            D.attempts,
            D.last_error,
            D.provider_message_id,
            D.updated_at,
            D.sent_at,
            D.id,
        )
        .select_from(Delivery)
        .join(Contact, CT.id == D.contact_id)
        .join(Account, A.id == D.account_id, isouter=True)
        .where(D.run_id == run_id)
        .order_by(D.id)
    )
    if state is not None:
        stmt = stmt.where(D.state == state)
    if account is not None:
        stmt = stmt.where(A.name == account)
    if search:
        stmt = stmt.where(
            or_(
                CT.external_id.icontains(search, autoescape=True),
                CT.name.icontains(search, autoescape=True),
            )
        )
    if after is not None:
        stmt = stmt.where(D.id > after)
    if limit:
        stmt = stmt.limit(limit)
    keys = (*DELIVERY_KEYS, "id") if with_id else DELIVERY_KEYS
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=2000).execute(stmt):
            yield dict(zip(keys, row if with_id else row[:-1], strict=True))


def iter_deliveries(
    engine: Engine, name: str, state: str | None = None, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """The per-recipient log of the latest run, in id order, streamed; times ISO 8601 UTC.

    An unknown campaign or state raises here, before the first row.
    """
    check_delivery_state(state)
    _, run = latest_run_of(engine, name)
    if run is None or run.id is None:
        return iter(())
    return _utc_times(delivery_rows(engine, run.id, state, limit))


def _utc_times(items: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        item["updated_at"] = iso_utc(item["updated_at"])
        item["sent_at"] = iso_utc(item["sent_at"])
        yield item
