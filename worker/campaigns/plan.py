"""`campaigns plan`: each account's capacity inside the window, whether the campaign fits, ETA.

Capacity is computed from the account's policy in its own time zone: the open time inside
the window (quiet hours excluded), at the steady rate its windows and gaps allow, capped per
local day by `per_day` less what that day already holds, scaled by the account's health, and
less the load other live campaigns already put on the account.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, FromClause, Subquery, case, func, literal, null, select
from sqlmodel import Session

from worker.campaigns import lookup
from worker.campaigns.assignment import Sender, assigned_members
from worker.campaigns.capacity import periods, sender_weights, simulate
from worker.campaigns.timeparse import iso_utc
from worker.campaigns.transitions import count_members, max_contact_id
from worker.dispatch.caps import recent_marketing_counts
from worker.dispatch.health import current_multiplier
from worker.limiter import (
    AccountLimits,
    LocalCalendar,
    Policy,
    RecipientLimits,
    load_policies,
    resolve_policy,
)
from worker.limiter.limiter import zone
from worker.store import tables
from worker.store.models import (
    OPEN_STATES,
    Account,
    AccountState,
    CampaignStatus,
    DeliveryState,
    Segment,
    utcnow,
)

D, R, C, CT = tables.deliveries.c, tables.campaign_runs.c, tables.campaigns.c, tables.contacts.c
DEFAULT_HORIZON = timedelta(days=7)
INF = float("inf")
USABLE = (AccountState.ACTIVE, AccountState.COOLDOWN)
DONE = "(done)"  # a materialised run's rows that are sent or failed: not part of the plan
# Members skipped for reasons the operator did not choose: the plan does not "fit" with them.
UNPLANNED = frozenset({"owner_not_in_campaign", "no_reachable_account"})


@dataclass
class AccountPlan:
    account: str
    state: str
    policy: str
    capacity: int | None  # None: nothing limits it inside the window
    other_load: int
    assigned: int
    capped: int  # of `assigned`, already at a recipient cap: skipped, costing no slot
    spare: int | None
    fits: bool
    eta: str | None
    short: int = 0  # sendable members it cannot reach before the end
    why: str | None = None  # why `short` is not 0, for a person

    @property
    def sendable(self) -> int:
        return self.assigned - self.capped

    @property
    def usable(self) -> bool:
        return self.state in USABLE

    def document(self) -> dict[str, Any]:
        return asdict(self)


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


@dataclass
class Audience:
    """Who the members are, as materialisation sees them: what goes where, what is skipped."""

    assigned: dict[int, int]  # account id -> members it will be asked to send to
    excluded: Counter[str]  # skip reason -> members (suppressed, owner not a sender, ...)
    capped: dict[int, int]  # account id -> assigned members already at a recipient cap


def _audience(
    engine: Engine,
    members: Subquery,
    accounts: list[Account],
    caps: dict[int, RecipientLimits] | None,
) -> Audience:
    """Count `members` (contact_id, account_id, reason) per account and skip reason.

    `caps` (marketing only) are each account's recipient limits: a member its account would
    reach while at its cap now is skipped (`frequency_cap`) when the lane gets there.
    """
    recent = recent_marketing_counts().subquery()
    source: FromClause = members
    if caps:
        source = members.outerjoin(recent, recent.c.contact_id == members.c.contact_id)
        day, week = recent.c.day, recent.c.week
    else:
        day, week = literal(None), literal(None)
    stmt = (
        select(members.c.account_id, members.c.reason, day, week, func.count())
        .select_from(source)
        .group_by(members.c.account_id, members.c.reason, day, week)
    )
    out = Audience({a.id: 0 for a in accounts if a.id is not None}, Counter(), {})
    with engine.connect() as conn:
        groups = conn.execute(stmt).all()
    for account_id, reason, sent_day, sent_week, n in groups:
        if reason is not None:
            out.excluded[reason] += n
            continue
        limits = (caps or {}).get(account_id)
        if limits is not None and _at_cap(limits, sent_day or 0, sent_week or 0):
            out.capped[account_id] = out.capped.get(account_id, 0) + n
        out.assigned[account_id] = out.assigned.get(account_id, 0) + n
    return out


def _at_cap(limits: RecipientLimits, day: int, week: int) -> bool:
    return (limits.per_day is not None and day >= limits.per_day) or (
        limits.per_week is not None and week >= limits.per_week
    )


def _segment_members(
    expression: str, upto: int, accounts: list[Account], weights: dict[int, int]
) -> Subquery:
    """The segment's members with the account and skip reason materialisation will give."""
    from worker.audience.segments import compile_segment

    senders = [Sender(a.id, a.channel, a.state == AccountState.ACTIVE) for a in accounts if a.id]
    return (
        assigned_members(senders, weights, cancelled=False, closed=False)
        .where(compile_segment(expression), CT.id <= upto)
        .subquery()
    )


def _run_rows(run_id: int) -> Subquery:
    """A materialised run's open rows (reason NULL) and skipped rows (their reason)."""
    reason = case(
        (D.state.in_(list(OPEN_STATES)), null()),
        (D.state == DeliveryState.SKIPPED, D.reason),
        else_=literal(DONE),
    )
    return (
        select(D.contact_id, D.account_id, reason.label("reason"))
        .where(D.run_id == run_id)
        .subquery()
    )


def _window(start_at: datetime | None, end_at: datetime | None) -> tuple[int, int, bool]:
    now = utcnow()
    start = max(now, start_at) if start_at else now
    end = end_at or start + DEFAULT_HORIZON

    def to_ms(moment: datetime) -> int:
        return int(moment.replace(tzinfo=UTC).timestamp() * 1000)

    return to_ms(start), to_ms(end), end_at is not None


def plan_campaign(
    engine: Engine, rate_limits_dir: Any, name: str, margin_ms: int = 0
) -> dict[str, Any]:
    """The plan document (`campaigns plan --json`).

    `margin_ms` is the limiter's window margin, so capacities are what the lanes can reach.
    Before materialisation the members are assigned exactly as materialisation will assign
    them (same SQL); after it, the run's open and skipped rows are counted.
    """
    policies: dict[str, Policy] = load_policies(rate_limits_dir, missing_ok=True)
    with Session(engine, expire_on_commit=False) as session:
        campaign = lookup.campaign_by_name(session, name)
        segment = session.get(Segment, campaign.segment_id)
        accounts = lookup.campaign_accounts(session, campaign.id)  # type: ignore[arg-type]
        run = lookup.latest_run(session, campaign.id)  # type: ignore[arg-type]
    assert segment is not None
    start_ms, end_ms, bounded = _window(campaign.start_at, campaign.end_at)
    with engine.connect() as conn:
        upto = max_contact_id(conn)
        members = count_members(conn, segment.expression, upto)
    if run is not None and run.materialised:
        rows = _run_rows(run.id)  # type: ignore[arg-type]
    else:
        weights = sender_weights(engine, policies, accounts, start_ms, end_ms, margin_ms)
        rows = _segment_members(segment.expression, upto, accounts, weights)
    caps = None
    if campaign.kind == "marketing":
        caps = {
            a.id: resolve_policy(policies, a.policy, a.channel).recipient
            for a in accounts
            if a.id is not None
        }
    audience = _audience(engine, rows, accounts, caps)
    audience.excluded.pop(DONE, None)
    lines = [
        _account_plan(
            engine,
            policies,
            a,
            campaign.id,  # type: ignore[arg-type]
            (audience.assigned.get(a.id, 0), audience.capped.get(a.id, 0)),  # type: ignore[arg-type]
            (start_ms, end_ms, margin_ms, bounded),
        )
        for a in accounts
    ]
    short = sum(r.short for r in lines)
    excluded = dict(sorted(audience.excluded.items()))
    capped = sum(audience.capped.values())
    etas = [r.eta for r in lines if r.sendable]
    known = [e for e in etas if e is not None]
    sendable = sum(r.sendable for r in lines)
    not_sent = {**excluded, **({"frequency_cap": capped} if capped else {})}
    if short:
        not_sent["no_capacity"] = short
    return {
        "name": campaign.name,
        "window": {
            "start": _iso(start_ms),
            "end": _iso(end_ms) if bounded else None,
            "tz": campaign.tz,
        },
        "members": members,
        "accounts": [r.document() for r in lines],
        "excluded": excluded,
        "capped": capped,
        "will_send": sendable - short,
        "not_sent": not_sent,
        "fits": short == 0
        and capped == 0
        and not set(excluded) & UNPLANNED
        and all(r.eta is not None for r in lines if r.sendable),
        "would_not_fit": short,
        "why": [r.why for r in lines if r.why],
        "eta": max(known) if known and len(known) == len(etas) else None,
    }


def _account_plan(
    engine: Engine,
    policies: dict[str, Policy],
    account: Account,
    campaign_id: int,
    load: tuple[int, int],
    window: tuple[int, int, int, bool],
) -> AccountPlan:
    """One account's line of the plan.

    `load` is (members assigned to it, of which at a recipient cap); `window` is (start ms,
    end ms, limiter margin ms, whether the end is the campaign's own).
    """
    assert account.id is not None
    assigned, capped = load
    start_ms, end_ms, margin_ms, bounded = window
    policy = resolve_policy(policies, account.policy, account.channel)
    limits = policy.account.scaled(current_multiplier(engine, account.id))
    calendar = LocalCalendar(zone(account.tz), limits.quiet_hours)
    other = _other_load(engine, account.id, campaign_id)
    capacity, _ = simulate(limits, calendar, start_ms, end_ms, 0, margin_ms)
    _, eta_ms = simulate(limits, calendar, start_ms, end_ms, other + assigned - capped, margin_ms)
    line = AccountPlan(
        account=account.name,
        state=account.state,
        policy=policy.name,
        capacity=capacity,
        other_load=other,
        assigned=assigned,
        capped=capped,
        spare=None if capacity is None else max(0, capacity - other),
        fits=True,
        eta=_iso(eta_ms) if eta_ms is not None else None,
    )
    if not line.usable:
        line.spare, line.eta = 0, None
        line.short = line.sendable
    elif bounded and line.spare is not None:
        line.short = max(0, line.sendable - line.spare)
    line.fits = line.short == 0
    if line.short:
        line.why = _why_short(line, limits, calendar, (start_ms, end_ms))
    return line


def _why_short(
    line: AccountPlan, limits: AccountLimits, calendar: LocalCalendar, window: tuple[int, int]
) -> str:
    """Why `line.short` of an account's members will not be sent, for a person."""
    who = f"account {line.account}"
    if not line.usable:
        return f"{who} is {line.state}: its {line.sendable:,} members wait for it"
    if not any(periods(calendar, *window)):
        quiet = limits.quiet_hours
        assert quiet is not None  # nothing else closes every moment of a window
        return (
            f"{who}: quiet hours ({_hhmm(quiet.start_min)}-{_hhmm(quiet.end_min)} "
            f"{calendar.tz.key}) cover the whole window"
        )
    if line.capacity == 0:
        return f"{who}: its policy {line.policy!r} allows no send before the end"
    if line.spare == 0:
        return (
            f"{who}: other live campaigns already take its {line.capacity:,} sends before the end"
        )
    return (
        f"{who} can send {line.spare:,} more before the end (policy {line.policy!r}); "
        f"{line.short:,} of its {line.sendable:,} members would be left"
    )


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _iso(ms: int) -> str | None:
    return iso_utc(datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None))
