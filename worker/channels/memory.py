"""An in-process channel for unit tests and benchmarks: instant, idempotent, inspectable."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from worker.channels.base import Channel, OutboundMessage, SendResult


class MemoryHub:
    """What every memory account of this process has accepted, keyed by idempotency key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.by_key: dict[str, tuple[str, OutboundMessage]] = {}
        self.duplicates = 0

    def accept(self, account: str, message: OutboundMessage) -> SendResult:
        with self._lock:
            seen = self.by_key.get(message.idempotency_key)
            if seen is not None:
                self.duplicates += 1
                return SendResult(seen[0])
            message_id = f"mem-{next(self._ids)}"
            self.by_key[message.idempotency_key] = (message_id, message)
            return SendResult(message_id)

    def find(self, key: str) -> SendResult | None:
        with self._lock:
            seen = self.by_key.get(key)
        return SendResult(seen[0]) if seen else None

    def clear(self) -> None:
        with self._lock:
            self.by_key.clear()
            self.duplicates = 0


HUB = MemoryHub()


class MemoryChannel(Channel):
    """Accepts everything into the process-wide `HUB`."""

    scheme: ClassVar[str] = "memory"
    max_text_len: ClassVar[int] = 4096
    default_policy: ClassVar[str] = "default"
    supports_idempotency_lookup: ClassVar[bool] = True

    def __init__(self, account: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(account, config)
        self.hub = HUB

    def send(self, message: OutboundMessage) -> SendResult:
        return self.hub.accept(self.account, message)

    def lookup(self, idempotency_key: str) -> SendResult | None:
        return self.hub.find(idempotency_key)
