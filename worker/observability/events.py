"""Structured events: what an operator's alerting should see as fields, not parse from text.

Each event is one log record with `event` naming its kind and the facts as fields
(`extra=`), so the JSON log format writes them as keys (`"event": "account_state"`,
`"account": "a1"`, `"state": "banned"`, `"reason": "account_banned"`), and the text format
still reads as a sentence.
"""

from __future__ import annotations

import logging
from datetime import datetime

from worker.store.models import AccountState

log = logging.getLogger("siyu.events")

# How loud each account state is by default: a ban needs a person now; a pause or cooldown
# stops sends; becoming active again is news, not trouble.
LEVELS: dict[str, int] = {
    AccountState.BANNED: logging.ERROR,
    AccountState.PAUSED: logging.WARNING,
    AccountState.COOLDOWN: logging.WARNING,
    AccountState.ACTIVE: logging.INFO,
}


def account_state(
    account: str,
    state: str,
    reason: str | None,
    *,
    level: int | None = None,
    until: datetime | None = None,
    note: str = "",
) -> None:
    """An account changed state (`reason`: the platform's error code, or "operator")."""
    fields = {"event": "account_state", "account": account, "state": state, "reason": reason}
    if until is not None:
        fields["until"] = until.isoformat(timespec="seconds") + "Z"
    why = reason or "no reason given"
    text = f"account {account} is now {state} ({why})" + (f"; {note}" if note else "")
    log.log(LEVELS.get(state, logging.WARNING) if level is None else level, text, extra=fields)
