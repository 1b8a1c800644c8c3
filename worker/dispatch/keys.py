"""Every Redis key siyu uses, under one prefix per installation (DESIGN 16).

Two databases that share a Redis (staging and production, a restored backup) must never take
each other's leases, locks or limits for their own, so every key starts with
`siyu:<installation id>:`.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.runtime import Context
from worker.store.db import installation_id


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names for one installation."""

    prefix: str

    def lane(self, account_id: int) -> str:
        """The account lane's lease: one holder cluster-wide."""
        return f"{self.prefix}:lane:{account_id}"

    def lane_queued(self, account_id: int) -> str:
        return f"{self.prefix}:lane-queued:{account_id}"

    def limiter_account(self, account_id: int) -> str:
        """The limiter's account key (its backend adds its own prefix and hash tag)."""
        return f"{self.prefix}:limit:{account_id}"

    def sent_times(self, account_id: int) -> str:
        return f"{self.prefix}:sent-times:{account_id}"

    def pace_last(self, account_id: int) -> str:
        return f"{self.prefix}:pace-last:{account_id}"

    def recipient(self, contact_id: int) -> str:
        return f"{self.prefix}:recipient:{contact_id}"

    def recipient_gap(self, account_id: int, contact_id: int) -> str:
        """Lives `min_gap_s` after the account's last message to the contact."""
        return f"{self.prefix}:recipient-gap:{account_id}:{contact_id}"

    def materialise(self, run_id: int) -> str:
        return f"{self.prefix}:materialise:{run_id}"

    def materialise_queued(self, run_id: int) -> str:
        return f"{self.prefix}:materialise-queued:{run_id}"

    @property
    def replies(self) -> str:
        """The reply drain's lease: one drain decides inbound messages at a time."""
        return f"{self.prefix}:replies"

    @property
    def replies_queued(self) -> str:
        """Set from a drain's request until the drain leaves: webhooks then enqueue nothing."""
        return f"{self.prefix}:replies-queued"

    @property
    def confirmations(self) -> str:
        """Held for a minute after sends awaiting a person's confirmation were followed up."""
        return f"{self.prefix}:confirmations"

    def worker(self, worker_id: str) -> str:
        """One `siyu worker` process's heartbeat: expires unless the process refreshes it."""
        return f"{self.prefix}:worker:{worker_id}"

    @property
    def workers(self) -> str:
        """The ids of workers that have sent a heartbeat (some may have expired since)."""
        return f"{self.prefix}:workers"

    @property
    def tick(self) -> str:
        return f"{self.prefix}:tick"

    @property
    def purge(self) -> str:
        """Held for an hour after old conversations were purged: the tick purges hourly."""
        return f"{self.prefix}:purge"

    @property
    def queue(self) -> str:
        """The Celery queue of this installation's tasks (`siyu worker` consumes only it)."""
        return self.prefix.replace(":", "-")


def keys(ctx: Context) -> Keys:
    """The keys of the context's installation (read from the database once)."""
    found = ctx.extras.get("keys")
    if not isinstance(found, Keys):
        found = ctx.extras["keys"] = Keys(f"siyu:{installation_id(ctx.engine)}")
    return found
