"""Test channels with scripted behaviour, registered under their own names."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from worker.channels import registry
from worker.channels.base import Channel, OutboundMessage, SendResult

Script = Callable[[OutboundMessage], SendResult]


class ScriptedChannel(Channel):
    """Sends through a per-account script; records every attempt. No lookup support."""

    scheme: ClassVar[str] = "scripted"
    max_text_len: ClassVar[int] = 4096
    supports_idempotency_lookup: ClassVar[bool] = False
    scripts: ClassVar[dict[str, Script]] = {}
    attempts: ClassVar[list[tuple[str, OutboundMessage]]] = []
    _lock = threading.Lock()

    def __init__(self, account: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(account, config)

    def send(self, message: OutboundMessage) -> SendResult:
        with self._lock:
            self.attempts.append((self.account, message))
        return self.scripts[self.account](message)

    @classmethod
    def reset(cls) -> None:
        cls.scripts.clear()
        cls.attempts.clear()


class ScriptedLookupChannel(ScriptedChannel):
    """Like ScriptedChannel, with a lookup table the test fills in."""

    scheme: ClassVar[str] = "scripted_lookup"
    supports_idempotency_lookup: ClassVar[bool] = True
    accepted: ClassVar[dict[str, str]] = {}

    def lookup(self, idempotency_key: str) -> SendResult | None:
        found = self.accepted.get(idempotency_key)
        return SendResult(found) if found else None


def register_fakes() -> None:
    registry.BUILTIN_CHANNELS["scripted"] = "tests.support.fakes:ScriptedChannel"
    registry.BUILTIN_CHANNELS["scripted_lookup"] = "tests.support.fakes:ScriptedLookupChannel"
