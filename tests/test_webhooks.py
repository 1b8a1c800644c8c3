"""siyu's side of inbound webhook signatures (Standard Webhooks), against the mock platform's."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from worker.mockplatform.signing import signed_headers as platform_headers
from worker.webhooks import (
    WebhookVerificationError,
    check_secret,
    new_secret,
    signed_headers,
    verify,
)

BODY = '{"message_id": "in-1", "text": "退订"}'.encode()


def test_what_the_platform_signs_siyu_verifies_and_the_reverse() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    verify(secret, BODY, platform_headers(secret, "in-1", now, BODY))
    assert signed_headers(secret, "in-1", now, BODY) == platform_headers(secret, "in-1", now, BODY)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda h: {**h, "webhook-signature": "v1,AAAA"}, "a wrong signature"),
        (lambda h: {k: v for k, v in h.items() if k != "webhook-signature"}, "no signature"),
        (lambda h: {**h, "webhook-id": "in-2"}, "another message id"),
        (lambda h: {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, "moved"),
    ],
)
def test_anything_but_the_exact_signature_is_refused(change: object, why: str) -> None:
    secret = new_secret()
    headers = signed_headers(secret, "in-1", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError):
        verify(secret, BODY, change(headers))  # type: ignore[operator]


def test_a_stale_or_future_timestamp_is_refused_even_when_signed() -> None:
    secret = new_secret()
    for skew in (timedelta(minutes=-6), timedelta(minutes=6)):
        headers = signed_headers(secret, "in-1", datetime.now(UTC) + skew, BODY)
        with pytest.raises(WebhookVerificationError):
            verify(secret, BODY, headers)


def test_another_secret_or_another_body_is_refused() -> None:
    secret = new_secret()
    headers = signed_headers(secret, "in-1", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError):
        verify(new_secret(), BODY, headers)
    with pytest.raises(WebhookVerificationError):
        verify(secret, BODY + b" ", headers)


@pytest.mark.parametrize(
    ("secret", "needle"),
    [
        ("s3cret", "must start with 'whsec_'"),
        ("whsec_***", "is not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "shorter than 16 bytes"),
    ],
)
def test_a_malformed_secret_says_how_to_make_one(secret: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle) as raised:
        check_secret(secret)
    assert "python -m worker.webhooks" in str(raised.value)
    assert new_secret().startswith("whsec_")
