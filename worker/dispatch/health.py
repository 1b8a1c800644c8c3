"""Account health: cooldowns with jitter and AIMD on the account's rate (DESIGN decision 8).

Throttling (`RateLimited`, `SenderThrottled`) halves the share of the policy's rate the account
uses (multiplicative decrease, never below `FLOOR`); every clean minute since the last change
gives back `STEP` (additive increase) up to the full rate.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import Engine, select, update

from worker.observability import events
from worker.store import tables
from worker.store.db import for_writing
from worker.store.models import AccountState, utcnow

A = tables.accounts.c

FLOOR = 0.1
DECREASE = 0.5
STEP = 0.1
STEP_EVERY_S = 60.0


def recovered(multiplier: float, seconds_since_change: float) -> float:
    """The multiplier after additive recovery over clean time."""
    steps = int(max(0.0, seconds_since_change) // STEP_EVERY_S)
    return min(1.0, multiplier + STEP * steps)


def current_multiplier(engine: Engine, account_id: int) -> float:
    """The account's rate share now, with recovery applied (and stored when it changed)."""
    with for_writing(engine).begin() as conn:
        row = conn.execute(
            select(A.rate_multiplier, A.rate_changed_at).where(A.id == account_id)
        ).first()
        if row is None or row[0] is None or row[0] >= 1.0 or row[1] is None:
            return 1.0 if row is None or row[0] is None else min(1.0, float(row[0]))
        elapsed = (utcnow() - row[1]).total_seconds()
        value = recovered(float(row[0]), elapsed)
        if value != row[0]:
            steps_s = int(elapsed // STEP_EVERY_S) * STEP_EVERY_S
            conn.execute(
                update(tables.accounts)
                .where(A.id == account_id)
                .values(rate_multiplier=value, rate_changed_at=row[1] + timedelta(seconds=steps_s))
            )
        return value


def throttled(engine: Engine, account_id: int, retry_after_s: float, reason: str) -> None:
    """Cool down for `retry_after_s` plus jitter and halve the account's rate share."""
    # Jitter spreads retries out; nothing here is secret.
    jitter_s = retry_after_s * random.uniform(0.05, 0.25) + random.uniform(0.2, 1.0)  # noqa: S311
    until = utcnow() + timedelta(seconds=retry_after_s + jitter_s)
    with for_writing(engine).begin() as conn:
        row = conn.execute(select(A.name, A.rate_multiplier).where(A.id == account_id)).first()
        name, current = row or (str(account_id), None)
        lowered = max(FLOOR, float(current or 1.0) * DECREASE)
        conn.execute(
            update(tables.accounts)
            .where(A.id == account_id)
            .values(
                state=AccountState.COOLDOWN,
                state_reason=reason,
                cooldown_until=until,
                rate_multiplier=lowered,
                rate_changed_at=utcnow(),
            )
        )
    events.account_state(
        name, AccountState.COOLDOWN, reason, until=until, note=f"rate x{lowered:.2f}"
    )
