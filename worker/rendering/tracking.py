"""`track(url)`: per-recipient tracking parameters, with an opaque HMAC recipient token.

The token is HMAC-SHA256(tracking_secret, f"{campaign}:{contact_id}"), hex, cut to 16
characters: stable for a (campaign, contact), unlinkable across campaigns, and it never
carries the raw id or the external id.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import parse_qsl, quote

import jinja2

from worker.rendering.errors import TemplateError

TOKEN_PARAM = "rt"  # noqa: S105  (a query parameter's name, not a secret)
TOKEN_LEN = 16
_MAX_PLANS = 256


def recipient_token(secret: str, campaign: str, contact_id: int) -> str:
    """The opaque per-recipient token `track()` adds as `rt`."""
    mac = hmac.new(secret.encode(), f"{campaign}:{contact_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:TOKEN_LEN]


def add_query_params(url: str, params: Iterable[tuple[str, str]]) -> str:
    """`url` with each param appended unless its key is already there; query and fragment kept.

    The author's own query text is left byte for byte. Raises `TemplateError` for anything
    but an absolute http(s) URL.
    """
    base, hash_sign, fragment = url.partition("#")
    present = _query_keys(base)
    extra = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params if k not in present
    )
    if not extra:
        return url
    return f"{base}{_joiner(base)}{extra}{hash_sign}{fragment}"


class Tracker:
    """Builds each recipient's `track()` for one campaign, from a pre-keyed HMAC."""

    def __init__(self, *, secret: str, campaign: str, channel: str) -> None:
        if not secret:
            raise ValueError("tracking_secret must not be empty")
        self._campaign = campaign
        self._utm = (("utm_source", "siyu"), ("utm_medium", channel), ("utm_campaign", campaign))
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
        self._plans: dict[str, tuple[str, str]] = {}

    def token(self, contact_id: int) -> str:
        """Same as `recipient_token(secret, campaign, contact_id)`, without re-keying."""
        mac = self._mac.copy()
        mac.update(f"{self._campaign}:{contact_id}".encode())
        return mac.hexdigest()[:TOKEN_LEN]

    def for_contact(self, contact_id: int) -> Callable[[object], str]:
        """The `track` function a template sees while rendering for this contact."""

        def track(url: object) -> str:
            head, tail = self._plan(_as_url(url))
            return f"{head}{self.token(contact_id)}{tail}" if head else tail

        return track

    def _plan(self, url: str) -> tuple[str, str]:
        """`url` with the utm params, split where `rt=<token>` goes; ("", url) if `rt` is set."""
        plan = self._plans.get(url)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:  # URLs computed per recipient: stay bounded
                self._plans.clear()
            plan = self._plans[url] = _split_for_token(add_query_params(url, self._utm))
        return plan


def _as_url(value: object) -> str:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the variable
    if not isinstance(value, str):
        raise TemplateError(f"track() needs a URL string, got {type(value).__name__}", kind="url")
    return value.strip()


def _split_for_token(url: str) -> tuple[str, str]:
    base, hash_sign, fragment = url.partition("#")
    if TOKEN_PARAM in _query_keys(base):
        return "", url
    return f"{base}{_joiner(base)}{TOKEN_PARAM}=", f"{hash_sign}{fragment}"


def _joiner(base: str) -> str:
    """What goes between a URL without fragment and one more query parameter."""
    if "?" not in base:
        return "?"
    return "" if base.endswith(("?", "&")) else "&"


@lru_cache(maxsize=256)
def _query_keys(base: str) -> frozenset[str]:
    """The query keys of a URL without fragment, after checking it is absolute http(s)."""
    scheme, sep, rest = base.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
        raise TemplateError(f"track() needs an http(s) URL, got {base!r}", kind="url")
    query = base.partition("?")[2]
    return frozenset(key for key, _ in parse_qsl(query, keep_blank_values=True))
