"""Sender accounts: add, list with health, pause, resume and remove."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlmodel import Session

from worker.campaigns import lookup
from worker.campaigns.timeparse import iso_utc, zone
from worker.channels.registry import build_channel
from worker.dispatch.health import current_multiplier
from worker.errors import UserError
from worker.limiter import load_policies, resolve_policy
from worker.observability import events
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import (
    OPEN_STATES,
    Account,
    AccountState,
    CampaignStatus,
    DeliveryState,
    utcnow,
)

A = tables.accounts.c
C = tables.campaigns.c
CA = tables.campaign_accounts.c
CT = tables.contacts.c
D = tables.deliveries.c
R = tables.campaign_runs.c
LIVE = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.RUNNING,
    CampaignStatus.PAUSED,
)
NAMED = 5  # how many campaigns or contacts a refusal names


def add_account(
    engine: Engine,
    name: str,
    channel: str,
    *,
    policy: str | None = None,
    tz: str = "Asia/Shanghai",
    config: dict[str, Any] | None = None,
    rate_limits_dir: Path | None = None,
) -> Account:
    """Validate channel, config, time zone and policy now, never at the first send."""
    if not name.strip():
        raise UserError("account name must not be empty")
    zone(tz)
    built = build_channel(channel, name, config or {})
    built.close()
    if rate_limits_dir is not None:
        policies = load_policies(rate_limits_dir, missing_ok=True)
        if policy is None and built.preferred_policy in policies:
            policy = built.preferred_policy
        resolve_policy(policies, policy, channel)
    with Session(for_writing(engine), expire_on_commit=False) as session:
        if session.exec(select(Account.id).where(Account.name == name)).first():  # type: ignore[call-overload]
            raise UserError(f"an account named {name!r} already exists")
        account = Account(name=name, channel=channel, policy=policy, tz=tz, config=config or {})
        session.add(account)
        session.commit()
        return account


def local_day_bounds_utc(tz: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of the account's local calendar day, as naive UTC."""
    zone_info = zone(tz)
    local_now = (now or utcnow()).replace(tzinfo=UTC).astimezone(zone_info)
    start = datetime.combine(local_now.date(), time(0), tzinfo=zone_info)
    end = datetime.combine(local_now.date() + timedelta(days=1), time(0), tzinfo=zone_info)
    return (
        start.astimezone(UTC).replace(tzinfo=None),
        end.astimezone(UTC).replace(tzinfo=None),
    )


def sent_today(engine: Engine, account: Account) -> int:
    start, end = local_day_bounds_utc(account.tz)
    stmt = select(func.count()).where(
        D.account_id == account.id,
        D.state == DeliveryState.SENT,
        D.sent_at >= start,
        D.sent_at < end,
    )
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def list_accounts(engine: Engine) -> list[dict[str, Any]]:
    """Every account's health, by name (`accounts list --json`)."""
    with Session(engine) as session:
        accounts = list(session.exec(select(Account).order_by(Account.name)).scalars())  # type: ignore[call-overload]
    return [_health(engine, a) for a in accounts]


def show_account(engine: Engine, name: str) -> dict[str, Any]:
    """One account's health, as `list_accounts` gives it; `NotFound` names the known ones."""
    with Session(engine) as session:
        account = lookup.account_by_name(session, name)
    return _health(engine, account)


def _health(engine: Engine, a: Account) -> dict[str, Any]:
    return {
        "name": a.name,
        "channel": a.channel,
        "policy": a.policy,
        "tz": a.tz,
        "state": a.state,
        "state_reason": a.state_reason,
        "cooldown_until": iso_utc(a.cooldown_until),
        "rate_share": round(current_multiplier(engine, a.id), 2) if a.id else 1.0,
        "sent_today": sent_today(engine, a),
    }


def set_paused(engine: Engine, name: str, paused: bool) -> Account:
    """Pause or resume an account; resuming also clears a ban or cooldown on purpose."""
    with Session(for_writing(engine), expire_on_commit=False) as session:
        account = lookup.account_by_name(session, name)
        account.state = AccountState.PAUSED if paused else AccountState.ACTIVE
        account.state_reason = "operator" if paused else None
        account.cooldown_until = None
        session.add(account)
        session.commit()
    # INFO: the operator did it and the command says so; the event is for the record.
    events.account_state(account.name, account.state, "operator", level=logging.INFO)
    return account


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:NAMED])
    return shown + (f" and {len(items) - NAMED} more" if len(items) > NAMED else "")


def _why_not_removable(conn: Connection, account_id: int | None, name: str) -> str | None:
    """What still needs the account, as a sentence saying what to do first; None if nothing."""
    live = conn.execute(
        select(C.name, C.status)
        .join(tables.campaign_accounts, CA.campaign_id == C.id)
        .where(CA.account_id == account_id, C.status.in_(list(LIVE)))
        .order_by(C.name)
    ).all()
    if live:
        named = _named([f"{n} ({status})" for n, status in live])
        return (
            f"account {name!r} is a sender of live campaign(s) {named}; "
            "edit them to use other accounts, or cancel them, first"
        )
    open_ = conn.execute(
        select(C.name, func.count())
        .select_from(tables.deliveries)
        .join(tables.campaign_runs, R.id == D.run_id)
        .join(tables.campaigns, C.id == R.campaign_id)
        .where(D.account_id == account_id, D.state.in_(list(OPEN_STATES)))
        .group_by(C.name)
        .order_by(C.name)
    ).all()
    if open_:
        named = _named([f"{n} ({count})" for n, count in open_])
        return (
            f"account {name!r} has deliveries pending, claimed or being sent in {named}; "
            "let them finish or cancel those campaigns first"
        )
    owned = conn.execute(
        select(CT.external_id).where(CT.owner_id == account_id).order_by(CT.id).limit(NAMED + 1)
    ).scalars()
    owned_ids = list(owned)
    if owned_ids:
        total = conn.execute(select(func.count()).where(CT.owner_id == account_id)).scalar_one()
        shown = ", ".join(owned_ids[:NAMED]) + (", ..." if total > NAMED else "")
        return (
            f"account {name!r} owns {total} contact(s) ({shown}) that only it may message; "
            "re-import them with another (or an empty) owner first"
        )
    return None


def remove_account(engine: Engine, name: str) -> int:
    """Remove an account nothing needs any more; returns how many past deliveries it made.

    Refused while a live campaign names it as a sender, a delivery of it is still open, or a
    contact belongs to it. Its finished deliveries stay in their campaigns' logs without an
    account, and it leaves the sender lists of finished campaigns. The account row is locked
    first, so no campaign can take it as a sender while it is being removed.
    """
    with Session(engine) as session:
        account_id = lookup.account_by_name(session, name).id  # NotFound names the known ones
    with for_writing(engine).begin() as conn:
        if conn.execute(select(A.id).where(A.id == account_id).with_for_update()).first() is None:
            raise UserError(f"account {name!r} was removed meanwhile")
        why = _why_not_removable(conn, account_id, name)
        if why is not None:
            raise UserError(why)
        past = conn.execute(
            update(tables.deliveries).where(D.account_id == account_id).values(account_id=None)
        ).rowcount
        conn.execute(delete(tables.campaign_accounts).where(CA.account_id == account_id))
        conn.execute(delete(tables.accounts).where(A.id == account_id))
    return int(past)


@dataclass(frozen=True)
class Unusable:
    """An account whose stored channel config this process cannot use, and why."""

    id: int
    name: str
    state: str
    problem: UserError


def unusable_accounts(engine: Engine) -> list[Unusable]:
    """Every account whose channel adapter cannot be built here from its stored config: its
    channel's package missing on this machine, a config this version refuses, a file it
    names gone. Building one validates it and opens no connection."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(A.id, A.name, A.state, A.channel, A.config).order_by(A.name)
        ).all()
    found = []
    for account_id, name, state, channel, config in rows:
        try:
            build_channel(channel, name, dict(config or {})).close()
        except UserError as exc:
            found.append(Unusable(account_id, name, state, exc))
    return found
