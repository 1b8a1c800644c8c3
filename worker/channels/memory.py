"""An in-process channel for unit tests and benchmarks: instant, idempotent, inspectable."""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar

from worker.channels.base import Channel, OutboundMessage, SendResult
from worker.errors import UserError


class MemoryHub:
    """What every memory account of this process has accepted, keyed by idempotency key.

    `max_keys` bounds what is kept (oldest forgotten first) so a benchmark's worker memory
    shows the engine's footprint rather than this store's; lookups then cover recent sends.
    """

    def __init__(self, max_keys: int | None = None) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.by_key: OrderedDict[str, tuple[str, OutboundMessage]] = OrderedDict()
        self.duplicates = 0
        self.accepted = 0
        self.max_keys = max_keys

    def accept(self, account: str, message: OutboundMessage) -> SendResult:
        with self._lock:
            seen = self.by_key.get(message.idempotency_key)
            if seen is not None:
                self.duplicates += 1
                return SendResult(seen[0])
            message_id = f"mem-{next(self._ids)}"
            self.by_key[message.idempotency_key] = (message_id, message)
            self.accepted += 1
            if self.max_keys is not None and len(self.by_key) > self.max_keys:
                self.by_key.popitem(last=False)
            return SendResult(message_id)

    def find(self, key: str) -> SendResult | None:
        with self._lock:
            seen = self.by_key.get(key)
        return SendResult(seen[0]) if seen else None

    def clear(self) -> None:
        with self._lock:
            self.by_key.clear()
            self.duplicates = 0
            self.accepted = 0


HUB = MemoryHub()


class MemoryChannel(Channel):
    """Accepts everything into the process-wide `HUB`."""

    scheme: ClassVar[str] = "memory"
    max_text_len: ClassVar[int] = 4096
    default_policy: ClassVar[str] = "default"
    supports_idempotency_lookup: ClassVar[bool] = True
    config_keys: ClassVar[frozenset[str]] = frozenset({"max_keys"})

    def __init__(self, account: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(account, config)
        self.hub = HUB
        if "max_keys" in self.config:
            try:
                HUB.max_keys = int(self.config["max_keys"])
            except ValueError:
                raise UserError(
                    f"account {account!r}: max_keys must be a whole number, "
                    f"got {self.config['max_keys']!r}"
                ) from None

    def send(self, message: OutboundMessage) -> SendResult:
        return self.hub.accept(self.account, message)

    def lookup(self, idempotency_key: str) -> SendResult | None:
        return self.hub.find(idempotency_key)
