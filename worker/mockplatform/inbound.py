"""Delivering a simulated user message to siyu's webhook, signed as a real platform would."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from worker.mockplatform.behaviour import iso_utc
from worker.mockplatform.signing import signed_headers

DELIVERY_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class InboundDelivery:
    """What happened to one simulated inbound message; `status` is None when nothing answered."""

    message_id: str
    delivered: bool
    status: int | None

    def to_json(self) -> dict[str, object]:
        return {"message_id": self.message_id, "delivered": self.delivered, "status": self.status}


def inbound_request(
    account: str,
    sender: str,
    text: str,
    secret: str | None,
    now: float,
    message_id: str | None = None,
) -> tuple[str, bytes, dict[str, str]]:
    """The message id, exact body bytes and headers of one webhook call.

    Without a secret the call goes out unsigned, so the receiver's refusal can be tested too.
    A given `message_id` delivers that message again, as a platform retrying a webhook does.
    """
    message_id = message_id or f"in-{uuid.uuid4().hex}"
    payload = {
        "message_id": message_id,
        "account": account,
        "from": sender,
        "text": text,
        "sent_at": iso_utc(now),
    }
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        when = datetime.fromtimestamp(now, UTC)
        headers.update(signed_headers(secret, message_id, when, body))
    return message_id, body, headers


async def deliver_inbound(
    client: httpx.AsyncClient,
    url: str,
    account: str,
    sender: str,
    text: str,
    secret: str | None,
    message_id: str | None = None,
) -> InboundDelivery:
    """POST one inbound message to `url`; any 2xx answer counts as delivered."""
    message_id, body, headers = inbound_request(
        account, sender, text, secret, time.time(), message_id
    )
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError:
        return InboundDelivery(message_id, delivered=False, status=None)
    return InboundDelivery(message_id, response.is_success, response.status_code)
