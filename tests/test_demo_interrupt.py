"""Ctrl-C reaches the demo even when Python drops the handler's exception.

Python runs a signal handler at whatever bytecode the main thread is executing. When that is a
garbage collector's callback (SQLAlchemy registers some), the handler's exception is printed as
"Exception ignored" and dropped; CI once saw the demo run to completion after Ctrl-C that way.
These tests force that ordering: the handler runs inside a finalizer.
"""

from __future__ import annotations

import signal
import weakref
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from worker import demo


class _Collected:
    pass


def _interrupt_inside_a_finalizer(sig: int) -> None:
    """Run siyu's handler where Python swallows what it raises, as a GC callback does."""
    handler = signal.getsignal(sig)
    assert callable(handler), "the demo installs its own handler"
    victim = _Collected()
    weakref.finalize(victim, handler, sig, None)
    del victim  # the finalizer runs here; its exception is printed and dropped


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_dropped_by_a_finalizer_still_stops_the_demo(
    sig: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    after: list[str] = []

    def run(_stack: ExitStack, _home: Path, *_args: int) -> dict[str, Any]:
        _interrupt_inside_a_finalizer(sig)
        after.append("the demo went on")
        return {}

    monkeypatch.setattr(demo, "_run", run)
    monkeypatch.setattr(demo, "_print_summary", lambda _summary: after.append("summary"))
    with pytest.raises(SystemExit) as stopped:
        demo.run_demo(contacts=1, workers=1, accounts=1)
    assert stopped.value.code == 130
    assert after == ["the demo went on"], "the raise was dropped, so only the flag can stop it"
    assert "demo interrupted" in capsys.readouterr().out


def test_the_handlers_are_put_back_after_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(demo, "_run", lambda *_a: {})
    monkeypatch.setattr(demo, "_print_summary", lambda _summary: None)
    demo.run_demo(contacts=1, workers=1, accounts=1)
    assert {sig: signal.getsignal(sig) for sig in before} == before
