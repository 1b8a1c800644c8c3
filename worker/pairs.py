"""`KEY=VALUE` pairs, as the CLI's `--var`/`--config` and the console's forms take them."""

from __future__ import annotations

from worker.errors import UserError


def parse_pairs(items: list[str] | None, option: str, *, secret: bool = False) -> dict[str, str]:
    """`KEY=VALUE` items into a dict; a malformed one names the option (or field). `secret`:
    the items may hold secrets (`--config token=...`), so a malformed one is named by its
    place, never shown (a forgotten `token=` would print the token)."""
    out: dict[str, str] = {}
    for place, item in enumerate(items or [], start=1):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            got = f"the {_ordinal(place)} one" if secret else repr(item)
            hidden = " (not shown: it may hold a secret)" if secret else ""
            raise UserError(f"{option} expects KEY=VALUE, got {got}{hidden}")
        out[key.strip()] = value
    return out


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
