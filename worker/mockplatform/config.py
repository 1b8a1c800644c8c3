"""The mock platform's settings: one frozen value, checked when it is built."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class MockPlatformConfig:
    """How the fake platform behaves; `0` means "off" for `per_minute` and `ban_after`.

    Raises `ValueError` with a one-line message for values no platform could have.
    """

    db_path: Path | str
    per_minute: int = 0
    ban_after: int = 0
    fail_rate: float = 0.0
    latency_ms: float = 0
    inbound_url: str | None = None
    webhook_secret: str | None = None
    unknown_recipients: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in ("per_minute", "ban_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if not _finite(self.latency_ms) or self.latency_ms < 0:
            raise ValueError(f"latency_ms must be a number >= 0, got {self.latency_ms!r}")
        if not _finite(self.fail_rate) or not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, got {self.fail_rate!r}")
        if self.inbound_url is not None:
            parts = urlsplit(self.inbound_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"inbound_url must be an http(s) URL, got {self.inbound_url!r}")
        if self.webhook_secret is not None:
            _check_secret(self.webhook_secret)
        object.__setattr__(self, "unknown_recipients", frozenset(self.unknown_recipients))


def _check_secret(secret: str) -> None:
    """A Standard Webhooks secret: `whsec_` and base64 (16 bytes or more)."""
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True) if body != secret else b""
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 16:
        raise ValueError(
            "the webhook secret (SIYU_WEBHOOK_SECRET) must be 'whsec_' followed by the base64 "
            "of 16 bytes or more (python -m worker.webhooks prints a new one)"
        )


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_recipients(text: str | None) -> frozenset[str]:
    """`"a, b,,c"` -> `{"a", "b", "c"}`: the comma-separated form of the command-line option."""
    return frozenset(part.strip() for part in (text or "").split(",") if part.strip())
