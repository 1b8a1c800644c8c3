"""Running the mock platform under uvicorn, announcing on stdout once it accepts connections."""

from __future__ import annotations

import socket

import uvicorn

from worker.mockplatform.app import create_app
from worker.mockplatform.config import MockPlatformConfig

READY_PREFIX = "mock platform listening on "


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints one ready line when its socket is listening."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            port = self.servers[0].sockets[0].getsockname()[1]
            host = self.config.host
            shown = f"[{host}]" if ":" in host else host
            print(f"{READY_PREFIX}http://{shown}:{port}", flush=True)


def serve(config: MockPlatformConfig, host: str = "127.0.0.1", port: int = 8900) -> None:
    """Serve the platform until SIGINT/SIGTERM; `port=0` picks a free port (printed)."""
    app = create_app(config)
    server_config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    _AnnouncingServer(server_config).run()
