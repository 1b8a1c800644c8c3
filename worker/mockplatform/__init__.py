"""A stand-alone fake messaging platform (FastAPI + SQLite) for the `mock` channel, tests and demo.

It imports nothing from the rest of `worker`, so it behaves like a separate service. Start it
with `python -m worker.mockplatform` or `siyu mock-platform`; see `app.py` for the HTTP API.
"""

from worker.mockplatform.app import create_app
from worker.mockplatform.config import MockPlatformConfig
from worker.mockplatform.server import READY_PREFIX, serve
from worker.mockplatform.signing import signed_headers, verify

__all__ = ["READY_PREFIX", "MockPlatformConfig", "create_app", "serve", "signed_headers", "verify"]
