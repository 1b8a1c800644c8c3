"""Who may use the operator API, the console and /metrics.

With `SIYU_API_TOKEN` set: whoever presents it, as `Authorization: Bearer TOKEN` (the API,
Prometheus) or through the console's sign-in; from anywhere. Without it: clients on this host
only (loopback), and `siyu api` refuses to listen anywhere else (`cli.api`).
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from worker.api.hosts import is_loopback
from worker.config import Settings, revealed


def token_matches(settings: Settings, given: str | None) -> bool:
    """Whether `given` is the API token (compared in constant time); never without one."""
    token = revealed(settings.api_token)
    if token is None or given is None:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def bearer_of(request: Request) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, if there is one."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def from_this_host(request: Request) -> bool:
    return is_loopback(request.client.host if request.client else None)


class Refused(HTTPException):
    """401 (no or wrong token) or 403 (another host, and no token is configured)."""

    def __init__(self, status_code: int, message: str) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
        super().__init__(status_code=status_code, detail=message, headers=headers)


def check_bearer(settings: Settings, request: Request, what: str) -> None:
    """Refuse `request` unless it may use `what` (a path, for the message) by bearer token."""
    if revealed(settings.api_token) is None:
        if from_this_host(request):
            return
        raise Refused(403, f"{what} from another host needs SIYU_API_TOKEN (a bearer token)")
    if not token_matches(settings, bearer_of(request)):
        raise Refused(401, f"{what} needs Authorization: Bearer <SIYU_API_TOKEN>")
