"""Unsubscribe links (RFC 8058 one-click): a short token naming one contact, signed so that
no one can make or alter one without `SIYU_UNSUBSCRIBE_SECRET`.

    token = base64url(contact id, big-endian, no leading zero bytes
                      + the first 16 bytes of HMAC-SHA256(secret, "siyu-unsubscribe:" + id))

About 26 characters. Only the secret's holder can name a contact; a token is checked in
constant time and only its one canonical spelling is accepted. Links are served only when
both `SIYU_PUBLIC_URL` and `SIYU_UNSUBSCRIBE_SECRET` are set (`link_for`); `siyu api` answers
them (`GET` asks, `POST` suppresses the contact with reason `unsubscribed`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from worker.config import Settings
from worker.dispatch.recipients import suppress

PATH = "/u/"
REASON = "unsubscribed"
_PURPOSE = b"siyu-unsubscribe:"  # keeps these MACs apart from any other use of the secret
_MAC_BYTES = 16
_MAX_ID_BYTES = 8


def make_token(secret: str, contact_id: int) -> str:
    """The token naming `contact_id`, signed with `secret`."""
    if contact_id < 1:
        raise ValueError(f"contact ids are positive, got {contact_id}")
    payload = contact_id.to_bytes((contact_id.bit_length() + 7) // 8, "big")
    return _encode(payload + _mac(secret, payload))


def read_token(secret: str, token: str) -> int | None:
    """The contact id a token names; None when it is malformed, forged or altered."""
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not 0 < len(payload) <= _MAX_ID_BYTES or payload[0] == 0 or _encode(raw) != token:
        return None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    return int.from_bytes(payload, "big")


def link_for(settings: Settings, contact_id: int) -> str | None:
    """The contact's one-click unsubscribe URL; None unless this installation serves one."""
    if settings.public_url is None or settings.unsubscribe_secret is None:
        return None
    token = make_token(settings.unsubscribe_secret.get_secret_value(), contact_id)
    return f"{settings.public_url}{PATH}{token}"


def unsubscribe(engine: Engine, contact_id: int) -> None:
    """Suppress the contact (idempotent: an earlier suppression keeps its reason)."""
    # A contact deleted since (no row to refer to) is sent nothing any more either.
    with contextlib.suppress(IntegrityError):
        suppress(engine, [contact_id], REASON)


def _mac(secret: str, payload: bytes) -> bytes:
    digest = hmac.new(secret.encode(), _PURPOSE + payload, hashlib.sha256).digest()
    return digest[:_MAC_BYTES]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
