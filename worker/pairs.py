"""`KEY=VALUE` pairs, as the CLI's `--var`/`--config` and the console's forms take them."""

from __future__ import annotations

from worker.errors import UserError


def parse_pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """`KEY=VALUE` items into a dict; a malformed one names the option (or field)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out
