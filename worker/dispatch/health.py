"""Account health: cooldowns with jitter and AIMD on the account's rate (DESIGN decision 8),
and stopping an account that cannot go on (its platform refused it, or its config is unusable).

Throttling (`RateLimited`, `SenderThrottled`) halves the share of the policy's rate the account
uses (multiplicative decrease, never below `FLOOR`); every clean minute since the last change
gives back `STEP` (additive increase) up to the full rate.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from sqlalchemy import Engine, select, update

from worker.dispatch import failover, runs
from worker.dispatch.kick import kick_lane
from worker.errors import UserError
from worker.observability import events
from worker.runtime import Context
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


MOVING = "ALERT: moving its movable deliveries to other accounts"
STOPPED = (AccountState.PAUSED, AccountState.BANNED)


def stop(ctx: Context, account_id: int, name: str, state: str, reason: str, note: str = "") -> None:
    """The account sends nothing more until an operator resumes it (`paused`; `banned` for
    good): an alert, its new state, and its movable deliveries moved to healthy peers, whose
    lanes wake. `reason` is what `accounts list` shows; `note` adds detail to the alert."""
    events.account_state(
        name, state, reason, level=logging.ERROR, note=f"{note}; {MOVING}" if note else MOVING
    )
    runs.set_account_state(ctx.engine, account_id, state, reason)
    for receiver in failover.move_movable(ctx.engine, account_id):
        kick_lane(ctx, receiver)


def unusable_config(
    ctx: Context, account_id: int, name: str, state: str, problem: UserError
) -> bool:
    """The account's stored channel config cannot be used here (its channel's package is not
    installed on this machine, an upgrade now refuses the config, a file it names is gone):
    pause it with reason `config`, the problem in the alert. False when it was stopped
    already (so each worker start and lane kick does not alert again)."""
    if state in STOPPED:
        return False
    stop(ctx, account_id, name, AccountState.PAUSED, "config", note=str(problem))
    return True
