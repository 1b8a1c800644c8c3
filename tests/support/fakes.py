"""Test channels with scripted behaviour, registered under their own names."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from worker.channels import registry
from worker.channels.base import Channel, Confirmation, OutboundMessage, SendResult

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


class HeldChannel(ScriptedChannel):
    """A platform that holds every send as a task until a person confirms it (like WeCom's
    customer mass-send): one task per message; `answers[task][to]` is what became of it."""

    scheme: ClassVar[str] = "held"
    answers: ClassVar[dict[str, dict[str, Confirmation]]] = {}
    on_ask: ClassVar[list[Callable[[str], None]]] = []  # run before answering, once each

    @property
    def awaits_confirmation(self) -> bool:
        return True

    def send(self, message: OutboundMessage) -> SendResult:
        with self._lock:
            self.attempts.append((self.account, message))
            task = f"task-{len(self.attempts)}"
        return SendResult(task, confirmed=False)

    def confirmations(self, message_id: str) -> dict[str, Confirmation]:
        while self.on_ask:
            self.on_ask.pop(0)(message_id)
        return dict(self.answers.get(message_id, {}))

    @classmethod
    def reset(cls) -> None:
        super().reset()
        cls.answers.clear()
        cls.on_ask.clear()


def register_fakes() -> None:
    registry.BUILTIN_CHANNELS["scripted"] = "tests.support.fakes:ScriptedChannel"
    registry.BUILTIN_CHANNELS["scripted_lookup"] = "tests.support.fakes:ScriptedLookupChannel"
    registry.BUILTIN_CHANNELS["held"] = "tests.support.fakes:HeldChannel"
