"""Choose the pacer for an account lane."""

from __future__ import annotations

from worker.dispatch.pacing import Pacer, Unpaced
from worker.dispatch.runs import AccountInfo
from worker.runtime import Context


def pacer_for(ctx: Context, account: AccountInfo) -> Pacer:
    """Unlimited for now; per-account rate limits plug in here."""
    return Unpaced()
