"""Where the embedded Redis of one state directory keeps its files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

_MAX_SOCKET_PATH = 100  # unix socket paths are limited to about 108 bytes


@dataclass(frozen=True)
class EmbeddedPaths:
    """Every file of one embedded server; all but a long socket path live in `state_dir`."""

    state_dir: Path

    @classmethod
    def of(cls, state_dir: Path | str) -> EmbeddedPaths:
        return cls(Path(state_dir).resolve())

    @property
    def socket(self) -> Path:
        path = self.state_dir / "redis.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha1(str(self.state_dir).encode(), usedforsecurity=False).hexdigest()[:16]
        # A unix socket path has ~100 bytes; the name is per state dir, and redis-server
        # creates the socket with permissions 700 (`server.py`).
        return Path("/tmp") / f"siyu-{digest}.sock"  # noqa: S108

    @property
    def server_pid(self) -> Path:
        return self.state_dir / "redis.pid"

    @property
    def server_log(self) -> Path:
        return self.state_dir / "redis.log"

    @property
    def supervisor_pid(self) -> Path:
        return self.state_dir / "redis-supervisor.pid"

    @property
    def supervisor_log(self) -> Path:
        return self.state_dir / "redis-supervisor.log"

    @property
    def users_lock(self) -> Path:
        """Held shared by every process using the server, exclusively by its supervisor."""
        return self.state_dir / "redis-users.lock"

    @property
    def start_lock(self) -> Path:
        """Serialises joining (and starting) with the supervisor's shutdown."""
        return self.state_dir / "redis-start.lock"
