"""Hypothesis strategies for limiter property tests: policies, zones, start instants."""

from __future__ import annotations

from hypothesis import strategies as st

from worker.limiter.model import AccountLimits, QuietHours

from .timeutil import epoch_s

ZONES = (
    "UTC",
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "America/Santiago",  # DST changes at local midnight
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Asia/Kolkata",  # +05:30
    "Pacific/Chatham",  # +12:45 / +13:45
)

# Instants near DST transitions and local midnights in the zones above.
INTERESTING_S = tuple(
    epoch_s(iso)
    for iso in (
        "2026-03-08T06:30:00+00:00",  # New York spring forward at 07:00Z
        "2026-11-01T05:30:00+00:00",  # New York fall back at 06:00Z
        "2026-03-29T00:30:00+00:00",  # London spring forward at 01:00Z
        "2026-04-05T02:30:00+00:00",  # Santiago fall back at 03:00Z
        "2026-09-06T03:30:00+00:00",  # Santiago spring forward at 04:00Z
        "2026-04-04T14:30:00+00:00",  # Lord Howe fall back at 15:00Z
        "2026-05-01T15:45:00+00:00",  # Shanghai 23:45
        "2026-06-15T09:00:00+00:00",
    )
)


@st.composite
def account_limits(draw: st.DrawFn) -> AccountLimits:
    """Random subsets of windows with small limits, gaps and quiet hours."""
    gap = draw(st.none() | st.tuples(st.floats(0, 20), st.floats(0, 30)))
    quiet = draw(
        st.none()
        | st.tuples(st.integers(0, 1439), st.integers(0, 1439))
        .filter(lambda q: q[0] != q[1])
        .map(lambda q: QuietHours(*q))
    )
    return AccountLimits(
        per_second=draw(st.none() | st.integers(1, 4)),
        per_minute=draw(st.none() | st.integers(1, 12)),
        per_hour=draw(st.none() | st.integers(1, 40)),
        per_day=draw(st.none() | st.integers(1, 25)),
        min_gap_s=0.0 if gap is None else gap[0],
        max_gap_s=0.0 if gap is None else gap[0] + gap[1],
        quiet_hours=quiet,
    )


start_instants = st.builds(
    lambda base, shift: base + shift,
    st.sampled_from(INTERESTING_S),
    st.floats(-36 * 3600, 36 * 3600).map(lambda s: round(s, 3)),
)

multipliers = st.sampled_from([1.0, 0.5, 0.3])


@st.composite
def arrivals(draw: st.DrawFn, limiters: int) -> list[tuple[float, int, int, float | None]]:
    """Requests as (seconds since the previous one, count, which limiter, not_before offset)."""
    request = st.tuples(
        st.one_of(st.just(0.0), st.floats(0, 5), st.floats(0, 4 * 3600)),
        st.one_of(st.just(1), st.integers(1, 12)),
        st.integers(0, limiters - 1),
        st.none() | st.floats(0, 6 * 3600),
    )
    return draw(st.lists(request, min_size=1, max_size=25))
