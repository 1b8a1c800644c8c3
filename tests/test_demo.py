"""`siyu demo` end to end, and that it leaves no process behind (Ctrl-C included)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cluster import wait_for
from worker.runtime.embedded.server import SUPERVISOR_MODULE

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def processes_in(cwd: Path) -> list[str]:
    """Command lines of live processes whose working directory is `cwd` (or below)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            where = os.readlink(entry / "cwd")
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if state != "Z" and (where == str(cwd) or where.startswith(f"{cwd}/")):
            found.append(cmd)
    return found


def redis_servers_for(cwd: Path) -> list[str]:
    return [cmd for cmd in processes_in(cwd) if "redis-server" in cmd]


def demo(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "SIYU_TEMPLATES_DIR": str(ROOT / "templates"),
        "SIYU_RATE_LIMITS_DIR": str(ROOT / "rate_limits"),
    }
    env.pop("SIYU_REDIS_URL", None)
    env.pop("SIYU_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "demo", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_demo_delivers_its_campaign_and_leaves_nothing_running(tmp_path: Path) -> None:
    proc = demo(tmp_path, "--contacts", "400", "--workers", "1")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "siyu demo summary" in out and "messages/s" in out
    assert "1 answered, 1 to a person, 1 opted out" in out, "the learners who wrote back"
    assert re.search(r"replies on the platform\s*│\s*3\b", out), out
    assert wait_for(lambda: not processes_in(tmp_path), 10), processes_in(tmp_path)
    assert not (tmp_path / ".siyu" / "demo" / "redis.sock").exists()


def test_ctrl_c_during_the_demo_stops_every_process_it_started(tmp_path: Path) -> None:
    proc = demo(tmp_path, "--contacts", "20000", "--workers", "2")
    assert wait_for(lambda: len(processes_in(tmp_path)) >= 4, 120), processes_in(tmp_path)
    assert redis_servers_for(tmp_path)
    assert [cmd for cmd in processes_in(tmp_path) if SUPERVISOR_MODULE in cmd], "seen by cwd too"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    assert wait_for(lambda: not processes_in(tmp_path), 15), processes_in(tmp_path)
