"""The operator API's test fixtures (a pytest plugin of tests/conftest.py): `api`, the app
with a token over a fresh context, and `siyu`, the CLI on the same database and Redis, to
compare what the two faces say. A module may define its own `api` (it takes precedence)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Siyu, siyu_on
from tests.support.operator import Api, token_api


@pytest.fixture
def api(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from token_api(db_url, redis_url, tmp_path)


@pytest.fixture
def siyu(
    api: Api, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Siyu]:
    """The CLI on the API's database, Redis and templates."""
    monkeypatch.setenv("SIYU_REDIS_URL", api.ctx.settings.redis_url or "")
    monkeypatch.setenv("SIYU_TEMPLATES_DIR", str(api.ctx.settings.templates_dir))
    with siyu_on(db_url, monkeypatch, capsys) as run:
        yield run
