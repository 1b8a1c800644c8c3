"""How much an account can send inside a window, under its policy and in its time zone.

Used by `campaigns plan` and by materialisation, which spreads the contacts that are free to
go to any account in proportion to each account's capacity, so slow accounts get less.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from worker.dispatch.health import current_multiplier
from worker.limiter import AccountLimits, LocalCalendar, Policy, resolve_policy
from worker.limiter.limiter import zone
from worker.store.models import Account

INF = float("inf")


def steady_rate(limits: AccountLimits, margin_ms: int = 0) -> float:
    """Sends per second the account can sustain (inf when nothing limits it).

    `margin_ms` is the limiter's window margin (`SIYU_LIMIT_MARGIN_MS`): it widens every
    window, which costs a per-second limit far more than a per-minute one.
    """
    rates = [
        w.limit / ((w.span_ms + margin_ms) / 1000)
        for w in limits.windows()
        if w.span_ms < 86_400_000
    ]
    if limits.has_gap:
        rates.append(2.0 / (limits.min_gap_s + limits.max_gap_s))
    return min(rates) if rates else float("inf")


def periods(calendar: LocalCalendar, start_ms: int, end_ms: int) -> Iterator[tuple[int, int, str]]:
    at = start_ms
    while at < end_ms:
        period = calendar.open_period(at)
        if period.start_ms >= end_ms:
            return
        yield period.start_ms, min(period.end_ms, end_ms), period.day.key
        at = period.end_ms


def simulate(
    limits: AccountLimits,
    calendar: LocalCalendar,
    start_ms: int,
    end_ms: int,
    demand: int,
    margin_ms: int = 0,
) -> tuple[int | None, int | None]:
    """(capacity inside [start, end) or None if unlimited, epoch ms when `demand` is done)."""
    rate = steady_rate(limits, margin_ms)
    used: dict[str, int] = {}
    capacity, unlimited, left = 0, False, demand
    eta_ms: int | None = start_ms if demand == 0 else None
    # Sending goes on across local midnight without a pause: the part of a send that one
    # period's length leaves over carries into the next period when the two touch.
    carry, last_end = 0.0, None
    for p_start, p_end, day in periods(calendar, start_ms, end_ms):
        room = INF if limits.per_day is None else max(0, limits.per_day - used.get(day, 0))
        carry = carry if p_start == last_end else 0.0
        last_end = p_end
        fits_f = min(room, carry + rate * (p_end - p_start) / 1000)
        if fits_f == INF:
            unlimited = True
            eta_ms = p_start if eta_ms is None else eta_ms
            left = 0
            continue
        fits = int(fits_f + 1e-9)
        carry = 0.0 if fits_f >= room else fits_f - fits
        if eta_ms is None and 0 < left <= fits:
            eta_ms = p_start + (0 if rate == INF else int(left / rate * 1000))
        left -= min(left, fits)
        used[day] = used.get(day, 0) + fits
        capacity += fits
    return (None if unlimited else capacity), eta_ms


def account_capacity(
    engine: object,
    policies: Mapping[str, Policy],
    account: Account,
    start_ms: int,
    end_ms: int,
    margin_ms: int = 0,
) -> int | None:
    """The account's capacity in the window at its current health (None: unlimited)."""
    assert account.id is not None
    policy = resolve_policy(dict(policies), account.policy, account.channel)
    limits = policy.account.scaled(current_multiplier(engine, account.id))  # type: ignore[arg-type]
    calendar = LocalCalendar(zone(account.tz), limits.quiet_hours)
    return simulate(limits, calendar, start_ms, end_ms, 0, margin_ms)[0]


def sender_weights(
    engine: object,
    policies: Mapping[str, Policy],
    accounts: Sequence[Account],
    start_ms: int,
    end_ms: int,
    margin_ms: int = 0,
) -> dict[int, int]:
    """Integer weights proportional to capacity; unlimited accounts weigh the most."""
    caps = {
        a.id: account_capacity(engine, policies, a, start_ms, end_ms, margin_ms) for a in accounts
    }
    finite = [c for c in caps.values() if c is not None]
    top = max(finite, default=1) * 10 or 1
    return {aid: max(1, c if c is not None else top) for aid, c in caps.items() if aid is not None}


def split_by_weight(count: int, weights: Sequence[int]) -> list[int]:
    """Split `count` items in proportion to `weights` (largest remainders)."""
    total = sum(weights)
    shares = [count * w // total for w in weights]
    order = sorted(range(len(weights)), key=lambda i: -(count * weights[i] % total))
    for i in order[: count - sum(shares)]:
        shares[i] += 1
    return shares
