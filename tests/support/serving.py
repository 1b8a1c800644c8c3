"""Serve a fake over real HTTP on loopback, in a thread of the test process: an ASGI app
(`serving`) or a stdlib request handler (`serving_handler`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn

from tests.support.mockplatform import free_port


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on a free port; yield its base URL; stop it afterwards."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class FakeHandler(BaseHTTPRequestHandler):
    """A fake platform's request handler: it logs nothing, and a client that gave up waiting
    (a timeout test) while it answered is no error."""

    # TCP_NODELAY: a response's headers and body go out in two writes, and with Nagle on the
    # body would wait for the client's delayed ACK (about 40 ms a request, which no real
    # platform adds).
    disable_nagle_algorithm = True

    def respond(self, status: int, payload: bytes, headers: Mapping[str, str] = {}) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving_handler(
    handler: type[BaseHTTPRequestHandler], name: str, on_stop: Callable[[], None]
) -> Iterator[str]:
    """Serve `handler` on a free port, one thread per request; yield the base URL. On exit
    `on_stop` runs first (to cut short a request that is waiting), then the server stops."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        on_stop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
