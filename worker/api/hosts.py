"""Which addresses only this machine reaches: where the operator API may go without a token,
and where an SMTP password may travel in clear."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """Whether `host` is this machine only (`localhost`, 127.0.0.0/8, ::1).

    Any other name, or none (a unix socket peer), may be anyone.
    """
    if host is not None and host.lower().rstrip(".") == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
