"""Sender accounts: add, list with health, pause and resume."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from worker.campaigns import lookup
from worker.campaigns.timeparse import iso_utc, zone
from worker.channels.registry import build_channel
from worker.dispatch.health import current_multiplier
from worker.errors import UserError
from worker.limiter import load_policies, resolve_policy
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import Account, AccountState, DeliveryState, utcnow

D = tables.deliveries.c


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
    build_channel(channel, name, config or {})
    if rate_limits_dir is not None:
        resolve_policy(load_policies(rate_limits_dir, missing_ok=True), policy, channel)
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
    with Session(engine) as session:
        accounts = list(session.exec(select(Account).order_by(Account.name)).scalars())  # type: ignore[call-overload]
    return [
        {
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
        for a in accounts
    ]


def set_paused(engine: Engine, name: str, paused: bool) -> Account:
    """Pause or resume an account; resuming also clears a ban or cooldown on purpose."""
    with Session(for_writing(engine), expire_on_commit=False) as session:
        account = lookup.account_by_name(session, name)
        account.state = AccountState.PAUSED if paused else AccountState.ACTIVE
        account.state_reason = "operator" if paused else None
        account.cooldown_until = None
        session.add(account)
        session.commit()
        return account
