"""Bad input through the real `siyu` command: one clear line, non-zero exit, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import Outcome, one_error_line, run_siyu
from worker.api.hosts import is_loopback
from worker.cli import app
from worker.config import get_settings

ROOT = Path(__file__).resolve().parent.parent


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "SIYU_DATABASE_URL": f"sqlite:///{cwd / 'siyu.db'}",
        "SIYU_TEMPLATES_DIR": str(cwd / "templates"),
        "SIYU_STATE_DIR": str(cwd / ".siyu"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        check=False,
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "ok.j2").write_text("你好 {{ contact.name }} {{ url }}", "utf-8")
    (tmp_path / "templates" / "broken.j2").write_text("第一行\n你好 {{ contact.name }", "utf-8")
    assert run(tmp_path, "init").returncode == 0
    assert run(tmp_path, "accounts", "add", "a1", "--channel", "memory").returncode == 0
    good = tmp_path / "good.csv"
    good.write_text("external_id,name,tags\nu1,张三,python\nu2,李四,python\n", "utf-8")
    assert run(tmp_path, "contacts", "import", str(good), "--channel", "memory").returncode == 0
    assert run(tmp_path, "segments", "add", "py", "--where", "tag = python").returncode == 0
    return tmp_path


def contact_ids(home: Path) -> list[str]:
    out = run(home, "contacts", "list", "--json")
    assert out.returncode == 0, out.stderr
    return sorted(c["external_id"] for c in json.loads(out.stdout))


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("u9,王五,python\n", ("bad.csv", "external_id")),
        ("".encode("gbk"), ()),
        ("external_id,name\nu7,甲\nu7,乙\n", ("bad.csv", "line 3", "u7")),
        ("external_id,name,owner\nu8,丙,nobody\n", ("bad.csv", "line 2", "nobody")),
    ],
    ids=["no-header", "not-utf8", "duplicate-id", "unknown-owner"],
)
def test_a_bad_csv_is_rejected_whole_with_its_line(
    home: Path, content: str | bytes, needles: tuple[str, ...]
) -> None:
    bad = home / "bad.csv"
    if isinstance(content, bytes) or content == "":
        bad.write_bytes("external_id,name\nu5,赵六\n".encode("gbk"))
        needles = ("bad.csv", "UTF-8", "line 2")
    else:
        bad.write_text(content, "utf-8")
    assert_clean_error(run(home, "contacts", "import", str(bad), "--channel", "memory"), *needles)
    assert contact_ids(home) == ["u1", "u2"]


def test_bad_segment_syntax_names_the_position(home: Path) -> None:
    result = run(home, "segments", "add", "bad", "--where", "level >= ")
    assert_clean_error(result, "column")
    assert run(home, "segments", "show", "bad").returncode != 0


def create(home: Path, template: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        home,
        "campaigns",
        "create",
        "c1",
        "--segment",
        "py",
        "--template",
        template,
        "--accounts",
        "a1",
        *extra,
    )


def test_a_template_syntax_error_names_file_and_line(home: Path) -> None:
    assert_clean_error(create(home, "broken"), "broken.j2", "line 2")
    assert run(home, "campaigns", "status", "c1").returncode != 0


def test_an_undefined_template_variable_names_file_and_line(home: Path) -> None:
    assert_clean_error(create(home, "ok"), "ok.j2", "line 1", "url")
    assert create(home, "ok", "--var", "url=https://x.example.com").returncode == 0


def test_an_unknown_channel_lists_the_known_ones(home: Path) -> None:
    assert_clean_error(run(home, "accounts", "add", "x", "--channel", "pigeon"), "pigeon", "memory")
    bad = home / "c.csv"
    bad.write_text("external_id\nu3\n", "utf-8")
    assert_clean_error(run(home, "contacts", "import", str(bad), "--channel", "pigeon"), "pigeon")
    assert contact_ids(home) == ["u1", "u2"]


def test_a_malformed_config_pair_is_named_by_its_place_never_shown(home: Path) -> None:
    token = "7012345678:AAF" + "q" * 32  # `token=` forgotten
    result = run(
        home, "accounts", "add", "tg", "--channel", "telegram",
        "--config", "api_base=https://api.telegram.org", "--config", token,
    )  # fmt: skip
    assert_clean_error(result, "--config expects KEY=VALUE, got the 2nd one", "not shown")
    assert token not in result.stderr + result.stdout and "AAF" not in result.stderr
    shown = run(
        home, "campaigns", "create", "c", "--segment", "s", "--template", "t", "--accounts", "a",
        "--var", "x",
    )  # fmt: skip
    assert "--var expects KEY=VALUE, got 'x'" in shown.stderr, "a --var is no secret: shown"


def test_an_unreachable_redis_is_one_clear_line(home: Path) -> None:
    assert create(home, "ok", "--var", "url=https://x.example.com").returncode == 0
    result = run(home, "campaigns", "start", "c1", env={"SIYU_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert_clean_error(result, "Redis", "127.0.0.1:1")
    status = json.loads(run(home, "campaigns", "status", "c1", "--json").stdout)
    assert status["status"] == "draft"


def test_an_unreachable_database_is_one_clear_line(home: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    for args in (("init",), ("contacts", "list"), ("campaigns", "status", "c1")):
        assert_clean_error(run(home, *args, env={"SIYU_DATABASE_URL": url}), "database")


# Usage errors, in-process through the console-script entry point: no database is touched.


def siyu(capsys: pytest.CaptureFixture[str], *args: str) -> Outcome:
    return run_siyu(capsys, *args)


one_usage_line = one_error_line  # a usage error honours the same refusal contract


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("campain", "list"), ("unknown command 'campain'", "did you mean 'campaigns'?")),
        (("contacts", "lst"), ("unknown command 'contacts lst'", "did you mean 'contacts list'?")),
        (
            ("campaigns", "stauts", "c1"),
            ("unknown command 'campaigns stauts'", "did you mean 'campaigns status'?"),
        ),
        (
            ("contacts", "import", "--chanel", "x", "f.csv"),
            ("unknown option '--chanel' for 'contacts import'", "did you mean '--channel'?"),
        ),
        (
            ("campaigns", "create", "c1", "--segement", "py"),
            ("unknown option '--segement' for 'campaigns create'", "did you mean '--segment'?"),
        ),
        (
            ("segments", "add"),
            ("segments add: missing argument", "name", "usage: siyu segments add"),
        ),
        (("segments", "add", "py"), ("segments add: missing option '--where'",)),
        (
            ("contacts", "list", "--bogus"),
            ("unknown option '--bogus' for 'contacts list'", "see 'siyu contacts list --help'"),
        ),
        (("--bogus",), ("unknown option '--bogus'", "see 'siyu --help'")),
        (
            ("campaigns", "xyzzy"),
            ("unknown command 'campaigns xyzzy'", "see 'siyu campaigns --help'"),
        ),
    ],
    ids=[
        "typo-group",
        "typo-command",
        "typo-campaigns-command",
        "typo-option",
        "typo-campaigns-option",
        "missing-argument",
        "missing-option",
        "unknown-option-nothing-close",
        "unknown-top-option",
        "unknown-command-nothing-close",
    ],
)
def test_a_usage_error_is_one_line_naming_the_closest_valid_name(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    line = one_usage_line(siyu(capsys, *args))

    for needle in needles:
        assert needle in line.lower(), line  # lower: older typer spells an argument NAME


@pytest.mark.parametrize(
    ("args", "usage", "listed"),
    [
        ((), "Usage: siyu [OPTIONS] COMMAND", "campaigns"),
        (("campaigns",), "Usage: siyu campaigns [OPTIONS] COMMAND", "deliveries"),
    ],
    ids=["siyu", "siyu-campaigns"],
)
def test_a_bare_group_prints_its_help_on_stdout_and_exits_2(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], usage: str, listed: str
) -> None:
    outcome = siyu(capsys, *args)

    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome
    assert outcome.code == 2
    assert outcome.stderr == ""
    assert usage in outcome.stdout and listed in outcome.stdout.split(usage)[1]
    assert siyu(capsys, *args, "--help").code == 0


def test_a_user_error_stays_one_line_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_usage_line(siyu(capsys, "mock-platform", "--port", "70000"))

    assert line == "error: --port must be between 0 and 65535, got 70000"


def test_running_main_again_in_one_process_registers_each_sub_app_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for _ in range(3):
        assert siyu(capsys, "--help").code == 0

    groups = [group.name for group in app.registered_groups]
    commands = [command.name for command in app.registered_commands]
    assert "campaigns" in groups and len(groups) == len(set(groups)), groups
    assert "init" in commands and len(commands) == len(set(commands)), commands


def test_no_traceback_reaches_a_real_terminal(tmp_path: Path) -> None:
    result = run(tmp_path, "campain", "list")

    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == 2
    assert result.stderr == "error: unknown command 'campain'; did you mean 'campaigns'?\n"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("SIYU_CLAIM_BATCH", "0", "SIYU_CLAIM_BATCH: Input should be greater than or equal to 1"),
        ("SIYU_LANE_SLICE_S", "soon", "SIYU_LANE_SLICE_S: Input should be a valid number"),
    ],
)
def test_a_setting_no_siyu_can_use_is_one_line_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    needle: str,
) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        line = one_usage_line(siyu(capsys, "campaigns", "list"))
    finally:
        get_settings.cache_clear()
    assert line.startswith(f"error: {needle}") and line.endswith(f"; got {value!r}"), line


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "siyu.example.com"])
def test_the_api_refuses_a_reachable_address_without_a_token(home: Path, host: str) -> None:
    env = {"SIYU_API_TOKEN": ""}
    result = run(home, "api", "--host", host, "--port", "0", env=env)
    assert_clean_error(result, f"--host {host} is reachable from other machines", "SIYU_API_TOKEN")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("10.0.0.1", False), ("::", False), ("api.internal", False)],
)  # fmt: skip
def test_only_loopback_addresses_may_go_without_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
