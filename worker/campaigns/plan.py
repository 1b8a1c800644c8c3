"""`campaigns plan`: each account's capacity inside the window, whether the campaign fits, ETA.

Capacity is computed from the account's policy in its own time zone: the open time inside
the window (quiet hours excluded), at the steady rate its windows and gaps allow, capped per
local day by `per_day` less what that day already holds, scaled by the account's health, and
less the load other live campaigns already put on the account.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from worker.campaigns import lookup
from worker.campaigns.capacity import sender_weights, simulate, split_by_weight
from worker.campaigns.timeparse import iso_utc
from worker.campaigns.transitions import count_members, max_contact_id
from worker.dispatch.health import current_multiplier
from worker.limiter import LocalCalendar, Policy, load_policies, resolve_policy
from worker.limiter.limiter import zone
from worker.store import tables
from worker.store.models import OPEN_STATES, Account, CampaignStatus, Segment, utcnow

D, R, CT = tables.deliveries.c, tables.campaign_runs.c, tables.contacts.c
DEFAULT_HORIZON = timedelta(days=7)
INF = float("inf")


@dataclass
class AccountPlan:
    account: str
    state: str
    policy: str
    capacity: int | None  # None: nothing limits it inside the window
    other_load: int
    assigned: int
    spare: int | None
    fits: bool
    eta: str | None


def _other_load(engine: Engine, account_id: int, campaign_id: int) -> int:
    live = (CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED)
    stmt = (
        select(func.count())
        .select_from(tables.deliveries)
        .join(tables.campaign_runs, R.id == D.run_id)
        .where(
            D.account_id == account_id,
            D.state.in_(list(OPEN_STATES)),
            R.status.in_(live),
            R.campaign_id != campaign_id,
        )
    )
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _assigned(
    engine: Engine, expression: str, accounts: list[Account], weights: dict[int, int]
) -> dict[int, int]:
    """Members per account as materialisation would assign them (owner-bound first)."""
    from worker.audience.segments import compile_segment

    stmt = (
        select(CT.owner_id, CT.channel, func.count())
        .where(compile_segment(expression))
        .group_by(CT.owner_id, CT.channel)
    )
    out = {a.id: 0 for a in accounts if a.id is not None}
    with engine.connect() as conn:
        groups = conn.execute(stmt).all()
    for owner_id, channel, n in groups:
        if owner_id is not None:
            if owner_id in out:
                out[owner_id] += n
            continue
        peers = [a for a in accounts if a.channel == channel]
        healthy = [a.id for a in peers if a.state == "active" and a.id is not None] or [
            a.id for a in peers if a.id is not None
        ]
        for account_id, share in zip(
            healthy, split_by_weight(n, [weights[i] for i in healthy]), strict=True
        ):
            out[account_id] += share
    return out


def _window(start_at: datetime | None, end_at: datetime | None) -> tuple[int, int, bool]:
    now = utcnow()
    start = max(now, start_at) if start_at else now
    end = end_at or start + DEFAULT_HORIZON
    to_ms = lambda d: int(d.replace(tzinfo=UTC).timestamp() * 1000)  # noqa: E731
    return to_ms(start), to_ms(end), end_at is not None


def plan_campaign(
    engine: Engine, rate_limits_dir: Any, name: str, margin_ms: int = 0
) -> dict[str, Any]:
    """The plan document (`campaigns plan --json`).

    `margin_ms` is the limiter's window margin, so capacities are what the lanes can reach.
    """
    policies: dict[str, Policy] = load_policies(rate_limits_dir, missing_ok=True)
    with Session(engine, expire_on_commit=False) as session:
        campaign = lookup.campaign_by_name(session, name)
        segment = session.get(Segment, campaign.segment_id)
        accounts = lookup.campaign_accounts(session, campaign.id)  # type: ignore[arg-type]
        run = lookup.latest_run(session, campaign.id)  # type: ignore[arg-type]
    assert segment is not None
    start_ms, end_ms, bounded = _window(campaign.start_at, campaign.end_at)
    pending = _pending_by_account(engine, run.id) if run and run.materialised else None
    if pending is not None:
        assigned = pending
    else:
        weights = sender_weights(engine, policies, accounts, start_ms, end_ms, margin_ms)
        assigned = _assigned(engine, segment.expression, accounts, weights)
    rows = [
        _account_plan(
            engine,
            policies,
            a,
            campaign.id,  # type: ignore[arg-type]
            assigned.get(a.id, 0),  # type: ignore[arg-type]
            (start_ms, end_ms, margin_ms),
        )
        for a in accounts
    ]
    short = sum(max(0, r.assigned - r.spare) for r in rows if r.spare is not None) if bounded else 0
    with engine.connect() as conn:
        members = count_members(conn, segment.expression, max_contact_id(conn))
    etas = [r.eta for r in rows if r.assigned]
    known = [e for e in etas if e is not None]
    return {
        "name": campaign.name,
        "window": {"start": _iso(start_ms), "end": _iso(end_ms) if bounded else None},
        "members": members,
        "accounts": [asdict(r) for r in rows],
        "fits": short == 0 and all(r.eta is not None for r in rows if r.assigned),
        "would_not_fit": short,
        "eta": max(known) if known and len(known) == len(etas) else None,
    }


def _account_plan(
    engine: Engine,
    policies: dict[str, Policy],
    account: Account,
    campaign_id: int,
    assigned: int,
    window: tuple[int, int, int],
) -> AccountPlan:
    """One account's line of the plan; `window` is (start ms, end ms, limiter margin ms)."""
    assert account.id is not None
    start_ms, end_ms, margin_ms = window
    policy = resolve_policy(policies, account.policy, account.channel)
    limits = policy.account.scaled(current_multiplier(engine, account.id))
    calendar = LocalCalendar(zone(account.tz), limits.quiet_hours)
    other = _other_load(engine, account.id, campaign_id)
    capacity, _ = simulate(limits, calendar, start_ms, end_ms, 0, margin_ms)
    _, eta_ms = simulate(limits, calendar, start_ms, end_ms, other + assigned, margin_ms)
    spare = None if capacity is None else max(0, capacity - other)
    usable = account.state in ("active", "cooldown")
    fits = usable and (spare is None or assigned <= spare)
    return AccountPlan(
        account=account.name,
        state=account.state,
        policy=policy.name,
        capacity=capacity,
        other_load=other,
        assigned=assigned,
        spare=spare if usable else 0,
        fits=fits,
        eta=_iso(eta_ms) if eta_ms is not None and usable else None,
    )


def _pending_by_account(engine: Engine, run_id: int | None) -> dict[int, int]:
    stmt = (
        select(D.account_id, func.count())
        .where(D.run_id == run_id, D.state.in_(list(OPEN_STATES)))
        .group_by(D.account_id)
    )
    with engine.connect() as conn:
        return {row[0]: int(row[1]) for row in conn.execute(stmt) if row[0] is not None}


def _iso(ms: int) -> str | None:
    return iso_utc(datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None))
