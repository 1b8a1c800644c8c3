"""Links (with or without a scheme), e-mail addresses, phone numbers and contact handles.

A link's canonical form drops the scheme and a leading `www.`, lowercases the host and drops a
trailing `/`; path, query and fragment are kept as written, so a link with another path or
other parameters is another link. A bare domain counts when its last label is a known
top-level domain (`siyu.cn`, `t.cn/abc`), so `pandas.DataFrame` is not taken for a link.
"""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import urlsplit

from worker.replies.claims.base import Claim, Kind, Rule, claim

# Common generic TLDs, the country codes seen in Chinese marketing, and the link shorteners'.
_TLDS = (
    "com|net|org|edu|gov|info|biz|xyz|top|vip|club|shop|store|site|online|tech|app|dev|link|"
    "live|fun|ink|wang|ren|art|cloud|work|pro|mobi|name|cn|hk|tw|mo|jp|kr|sg|us|uk|io|co|me|"
    "cc|tv|ai|ly|gl|gd|to|so|im|la|in|de|fr|ru|ca|au|nz"
)
# What a link is made of; it ends at whitespace, CJK text or full-width punctuation.
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
_TRAILING = ".,;:!?'\")]}"

_SCHEME_URL = re.compile(rf"(?<![A-Za-z0-9])(?:https?|ftp)://{_URL_CHARS}+", re.IGNORECASE)
_BARE_URL = re.compile(
    r"(?<![A-Za-z0-9@.\-])(?:www\.)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    rf"(?:{_TLDS})(?![A-Za-z0-9\-])(?::\d{{1,5}})?(?:[/?#]{_URL_CHARS}*)?"
    rf"|(?<![A-Za-z0-9@.\-])www\.{_URL_CHARS}+",
    re.IGNORECASE,
)


def canonical_url(text: str) -> tuple[str, str] | None:
    """(host, the rest) of a link: `HTTPS://www.Siyu.cn/a/` -> ("siyu.cn", "/a"); None: no host."""
    parts = urlsplit(text if "://" in text else f"//{text}")
    host = (parts.hostname or "").lower().removeprefix("www.")
    if not host:
        return None
    port = f":{parts.port}" if _has_port(parts.netloc) else ""
    path = parts.path.rstrip("/")
    rest = (
        path
        + (f"?{parts.query}" if parts.query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )
    return host + port, rest


def _has_port(netloc: str) -> bool:
    return bool(re.search(r":\d+$", netloc))


def _url(match: re.Match[str]) -> Claim | None:
    text = match.group(0).rstrip(_TRAILING)
    try:
        canonical = canonical_url(text)
    except ValueError:  # an invalid port or IPv6 literal: keep it checkable as written
        canonical = (text.lower(), "")
    if canonical is None:
        return None
    return Claim(Kind.URL, frozenset({canonical}), text)


_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)


def _email(match: re.Match[str]) -> Claim:
    return claim(Kind.EMAIL, match.group(0).lower(), match.group(0))


_PHONE = re.compile(
    r"(?<![\d+])(?:(?:\+|00)?86[ -]?)?(?P<mobile>1[3-9]\d[ -]?\d{4}[ -]?\d{4})(?!\d)"
    r"|(?<!\d)(?P<service>[48]00[ -]?\d{3}[ -]?\d{4})(?!\d)"
    r"|(?<![\d(])(?P<landline>\(?0\d{2,3}\)?[ -]?\d{7,8})(?!\d)"
)


def _phone(match: re.Match[str]) -> Claim:
    written = match.group("mobile") or match.group("service") or match.group("landline")
    digits = re.sub(r"\D", "", written)
    return claim(Kind.PHONE, digits, match.group(0), Decimal(digits))


# A contact handle after its label: `微信号：siyu_edu`, `QQ: abcde`. With digits, the code rule
# would catch it anyway; without, only its label shows it is a claim.
_HANDLE = re.compile(
    r"(?:微信号?|v信|vx|wx|qq号?|qq群|公众号|抖音号?|小红书号?)\s*[:：]?\s*"
    r"(?P<handle>[A-Za-z][A-Za-z0-9_-]{3,})(?![A-Za-z0-9_-])",
    re.IGNORECASE,
)


def _handle(match: re.Match[str]) -> Claim:
    handle = match.group("handle")
    return claim(Kind.CODE, handle.lower(), handle)


LINK_RULES = (
    Rule(Kind.URL, _SCHEME_URL, _url),
    Rule(Kind.EMAIL, _EMAIL, _email),
    Rule(Kind.URL, _BARE_URL, _url),
    Rule(Kind.PHONE, _PHONE, _phone),
    Rule(Kind.CODE, _HANDLE, _handle),
)
