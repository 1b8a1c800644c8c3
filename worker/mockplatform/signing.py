"""How the mock platform signs the inbound webhooks it delivers (and how a receiver checks them).

The scheme, the same one every siyu inbound webhook is verified with:

    X-Siyu-Timestamp: <unix seconds, an integer>
    X-Siyu-Signature: sha256=<hex of HMAC-SHA256(secret, f"{timestamp}." + raw_body)>

The HMAC covers the exact bytes of the request body, prefixed with the timestamp and a dot, so
a receiver must verify the raw body before parsing it, and should refuse timestamps far from its
own clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Siyu-Timestamp"
SIGNATURE_HEADER = "X-Siyu-Signature"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The `X-Siyu-Signature` header value for `body` sent at `timestamp`."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: int | str, body: bytes, signature: str) -> bool:
    """Whether `signature` (a header value) is `sign(secret, timestamp, body)`, in constant time."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
