"""Inbound webhook signatures, by the Standard Webhooks scheme (the `standardwebhooks` library).

Every inbound webhook siyu accepts, and every one the mock platform delivers, carries

    webhook-id: <the message id>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 of HMAC-SHA256(key, f"{id}.{timestamp}." + raw body)>

where the key is the base64 part of `SIYU_WEBHOOK_SECRET` (`whsec_` + base64). A receiver
verifies the raw body before parsing it; the library refuses timestamps more than five
minutes from its clock (replays).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from datetime import datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PREFIX = "whsec_"
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = (
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
)

__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookVerificationError",
    "check_secret",
    "new_secret",
    "signed_headers",
    "verify",
]


def new_secret() -> str:
    """A fresh secret in the scheme's format (24 random bytes)."""
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def check_secret(secret: str, name: str = "SIYU_WEBHOOK_SECRET") -> Webhook:
    """The signer and verifier for `secret`; `ValueError` with a one-line fix, naming the
    setting `name` (never the secret), when it is malformed."""
    how = f"e.g. {new_secret()} (python -m worker.webhooks prints a new one)"
    if not secret.startswith(PREFIX):
        raise ValueError(f"{name} must start with {PREFIX!r}, {how}")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name}: the part after {PREFIX!r} is not base64, {how}") from None
    if len(key) < 16:
        raise ValueError(f"{name}: the key is shorter than 16 bytes, {how}")
    return Webhook(secret)


def signed_headers(secret: str, message_id: str, when: datetime, body: bytes) -> dict[str, str]:
    """The three headers that sign `body` as message `message_id` sent at `when`."""
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(int(when.timestamp())),
        SIGNATURE_HEADER: check_secret(secret).sign(message_id, when, body),
    }


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise `WebhookVerificationError` unless `headers` sign `body` with `secret`, recently."""
    check_secret(secret).verify(body, dict(headers), json_parse=False)


if __name__ == "__main__":
    print(new_secret())
