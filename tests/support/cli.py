"""Run the `siyu` console script in-process against a test database, as an operator would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from worker.cli import main
from worker.config import get_settings
from worker.runtime import set_context
from worker.store.db import reset_engines


@dataclass(frozen=True)
class Outcome:
    """What one `siyu ...` printed and its exit status."""

    code: int
    stdout: str
    stderr: str


Siyu = Callable[..., Outcome]


def run_siyu(capsys: pytest.CaptureFixture[str], *args: str) -> Outcome:
    """`siyu *args`, through `worker.cli.main` as the console script calls it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out = capsys.readouterr()
    code = exited.value.code
    return Outcome(0 if code is None else code if isinstance(code, int) else 1, out.out, out.err)


@contextmanager
def siyu_on(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Siyu]:
    """A `siyu(*args)` whose settings point at `db_url`; settings, engines and the process's
    context are fresh."""
    monkeypatch.setenv("SIYU_DATABASE_URL", db_url)
    get_settings.cache_clear()
    reset_engines()
    set_context(None)
    try:
        yield lambda *args: run_siyu(capsys, *args)
    finally:
        set_context(None)
        reset_engines()
        get_settings.cache_clear()


def one_error_line(outcome: Outcome) -> str:
    """The refusal contract: exit 2, nothing on stdout, one `error:` line, no traceback."""
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome
    assert outcome.code == 2, outcome
    assert outcome.stdout == ""
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
    return lines[0]
