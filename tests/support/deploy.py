"""Read the deployment as Docker would: docker-compose.yml interpolated like Compose does,
the `.env` file format, the Dockerfile's instructions by stage, and published ports.

Compose itself cannot run in the tests (nor Docker); `make compose-check` runs the real
`docker-compose config`. This is enough of both to check what the files say.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Compose's variable syntax: `$$`, `$NAME`, `${NAME}`, `${NAME-x}`, `${NAME:-x}`,
# `${NAME?msg}`, `${NAME:?msg}`.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>[_A-Za-z][_A-Za-z0-9]*)"
    r"|\{(?P<braced>[_A-Za-z][_A-Za-z0-9]*)(?:(?P<sep>:?[-?])(?P<arg>[^}]*))?\})"
)


class MissingVariable(LookupError):
    """A `${NAME:?message}` whose variable is unset or blank: Compose refuses to start."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def variables(text: str) -> set[str]:
    """Every variable a Compose file refers to (`$$` escapes excluded)."""
    return {m["named"] or m["braced"] for m in _VARIABLE.finditer(text) if not m["escaped"]}


def defaults(text: str) -> dict[str, str]:
    """The default of each `${NAME:-default}` (or `${NAME-default}`) in a Compose file."""
    found = {}
    for m in _VARIABLE.finditer(text):
        if m["sep"] and m["sep"].endswith("-"):
            found[m["braced"]] = m["arg"]
    return found


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`value` (a loaded YAML tree) with every string's variables substituted from `env`."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _substitute(m, env), value)
    return value


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name = match["named"] or match["braced"]
    value, sep = env.get(name), match["sep"]
    if sep is None:
        return value or ""
    missing = value is None or (sep.startswith(":") and value == "")
    if sep.endswith("-"):
        return str(match["arg"]) if missing else str(value)
    if missing:
        raise MissingVariable(name, match["arg"])
    return str(value)


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines of a Compose `.env` file; comments and blank lines skipped."""
    env = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def load_compose(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The Compose file with anchors merged and variables substituted, as Compose reads it."""
    tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    return dict(interpolate(tree, env))


def command_args(command: str | list[str]) -> list[str]:
    """A service's `command` as an argument list (the shell form split as Compose does)."""
    return command.split() if isinstance(command, str) else [str(arg) for arg in command]


@dataclass(frozen=True)
class Published:
    """One `ports:` entry: the host address it binds ("" = every interface)."""

    host_ip: str
    spec: str

    @property
    def loopback_only(self) -> bool:
        try:
            return ipaddress.ip_address(self.host_ip.strip("[]")).is_loopback
        except ValueError:
            return self.host_ip == "localhost"


def published(service: Mapping[str, Any]) -> list[Published]:
    """The service's published ports; `HOST:CONTAINER` and `CONTAINER` bind every interface."""
    found = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            found.append(Published(str(entry.get("host_ip", "")), json.dumps(entry)))
            continue
        parts = str(entry).rsplit(":", 2)
        found.append(Published(parts[0] if len(parts) == 3 else "", str(entry)))
    return found


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction; `stage` counts FROMs from 0 (-1: before the first)."""

    keyword: str
    args: str
    stage: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of `CMD ["a", "b"]`, or None for the shell form."""
        return list(json.loads(self.args)) if self.args.startswith("[") else None


def dockerfile(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    stage, pending = -1, ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), " ".join(args.split()), stage))
    return instructions
