"""The console's signed session cookie, who may use the console, and the CSRF check.

Policy (`worker.api.auth`): with `SIYU_API_TOKEN` set, a person signs in with it, from
anywhere; without one, only this host (loopback) may use the console, with no sign-in.

The session is Starlette's `SessionMiddleware` (an itsdangerous-signed cookie, HttpOnly,
SameSite=Lax, and Secure when `SIYU_PUBLIC_URL` is https), kept to the console's paths so
the API and webhooks never see a cookie. Its key is derived from the token, so changing the
token signs everyone out; without a token it is random per process (loopback only, so a
restart merely renews the CSRF token). Every POST must carry the session's CSRF token, as
the form field `csrf` or the header `X-CSRF-Token` (htmx).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable

from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from worker.api.auth import from_this_host, token_matches
from worker.config import Settings, revealed

COOKIE = "siyu_console"
SESSION_MAX_AGE_S = 12 * 3600  # one long shift
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
# The first path segment of every console page; the session middleware acts on these only.
CONSOLE_ROOTS = frozenset(
    {"", "signin", "signout", "lang", "live", "campaigns", "accounts", "contacts", "inbox"}
)


def is_console_path(path: str) -> bool:
    return path.strip("/").split("/", 1)[0] in CONSOLE_ROOTS


def session_key(settings: Settings) -> str:
    """The cookie-signing key: from the token when there is one, else random per process."""
    token = revealed(settings.api_token)
    if token is None:
        return secrets.token_hex(32)
    return hmac.new(token.encode(), b"siyu console session v1", hashlib.sha256).hexdigest()


def secure_cookie(settings: Settings) -> bool:
    """Mark the cookie `Secure` (sent over HTTPS only) when people reach siyu over HTTPS, as
    `SIYU_PUBLIC_URL` says (a TLS proxy in front of `siyu api`)."""
    return (settings.public_url or "").lower().startswith("https://")


class ConsoleSessions:
    """`SessionMiddleware` on the console's paths, built at the first console request (its key
    needs the settings, which come with the process context, made on first use)."""

    def __init__(self, app: ASGIApp, settings: Callable[[], Settings]) -> None:
        self.app = app
        self._settings = settings
        self._sessions: SessionMiddleware | None = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_console_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        await self._middleware()(scope, receive, send)

    def _middleware(self) -> SessionMiddleware:
        with self._lock:
            if self._sessions is None:
                self._sessions = SessionMiddleware(
                    self.app,
                    secret_key=session_key(self._settings()),
                    session_cookie=COOKIE,
                    max_age=SESSION_MAX_AGE_S,
                    same_site="lax",
                    https_only=secure_cookie(self._settings()),
                )
            return self._sessions


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


def csrf_ok(request: Request, given: str | None) -> bool:
    """Whether `given` (form field or header) is this session's CSRF token."""
    expected = request.session.get(CSRF_FIELD)
    if not isinstance(expected, str) or not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def needs_sign_in(settings: Settings) -> bool:
    return revealed(settings.api_token) is not None


def signed_in(settings: Settings, request: Request) -> bool:
    """May this request use the console (signed in, or from this host without a token)?"""
    if not needs_sign_in(settings):
        return from_this_host(request)
    return request.session.get("signed_in") is True


def sign_in(settings: Settings, request: Request, given: str) -> bool:
    """Check the token; on success start a fresh session (new CSRF token: no fixation)."""
    if not token_matches(settings, given.strip()):
        return False
    request.session.clear()
    request.session["signed_in"] = True
    csrf_token(request)
    return True
