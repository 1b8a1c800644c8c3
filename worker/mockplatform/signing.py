"""How the mock platform signs the inbound webhooks it delivers: Standard Webhooks.

    webhook-id: <message id>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}." + raw body)>

The secret is `whsec_` + base64 of the key, as `SIYU_WEBHOOK_SECRET` is for siyu. Signing and
verifying are the `standardwebhooks` library's; the platform imports nothing from siyu.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def signed_headers(secret: str, message_id: str, when: datetime, body: bytes) -> dict[str, str]:
    """The `webhook-id`, `webhook-timestamp` and `webhook-signature` headers of one delivery."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, when, body),
    }


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether `headers` sign `body` with `secret` (and the timestamp is recent)."""
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError:
        return False
    return True
