"""Reading rate_limits/*.toml: values, defaults, resolution, and one clear error per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import UserError
from worker.limiter.model import UNLIMITED_DEFAULT, Policy, QuietHours, Window
from worker.limiter.policy import load_policies, parse_policy_text, resolve_policy

ROOT = Path(__file__).resolve().parents[2]


def parse(text: str) -> Policy:
    return parse_policy_text(text, "rate_limits/mock.toml", "mock")


def error_of(text: str) -> str:
    with pytest.raises(UserError) as caught:
        parse(text)
    return str(caught.value)


def test_every_field_of_the_contract_example_is_read() -> None:
    policy = parse(
        """
        [account]
        per_second = 1
        per_minute = 20
        per_hour = 600
        per_day = 800
        min_gap_s = 2.0
        max_gap_s = 8
        quiet_hours = "22:00-08:00"
        [recipient]
        per_day = 1
        per_week = 3
        min_gap_s = 1.5
        """
    )
    account = policy.account
    assert (account.per_second, account.per_minute, account.per_hour) == (1, 20, 600)
    assert (account.per_day, account.min_gap_s, account.max_gap_s) == (800, 2.0, 8.0)
    assert account.quiet_hours == QuietHours(22 * 60, 8 * 60)
    assert (policy.recipient.per_day, policy.recipient.per_week) == (1, 3)
    assert policy.recipient.min_gap_s == 1.5
    assert account.windows() == (Window(1000, 1), Window(60_000, 20), Window(3_600_000, 600))
    assert (policy.name, policy.source) == ("mock", "rate_limits/mock.toml")


def test_an_empty_file_limits_nothing() -> None:
    policy = parse("")
    assert policy.account.is_unlimited
    assert policy.account.quiet_hours is None
    assert policy.recipient.per_day is None


def test_one_gap_bound_alone_means_a_fixed_gap_or_a_gap_from_zero() -> None:
    assert parse("[account]\nmin_gap_s = 3").account.max_gap_s == 3.0
    only_max = parse("[account]\nmax_gap_s = 5").account
    assert (only_max.min_gap_s, only_max.max_gap_s) == (0.0, 5.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"21:00-24:00"', QuietHours(21 * 60, 0)),
        ('"1:30 - 5:00"', QuietHours(90, 300)),
        ('"00:00-06:15"', QuietHours(0, 375)),
    ],
)
def test_quiet_hours_accept_a_few_natural_spellings(text: str, expected: QuietHours) -> None:
    assert parse(f"[account]\nquiet_hours = {text}").account.quiet_hours == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[account]\nper_minute = "fast"',
            'rate_limits/mock.toml: [account].per_minute must be a positive integer, got "fast"',
        ),
        ("[account]\nper_second = 0", "[account].per_second must be a positive integer, got 0"),
        ("[account]\nper_day = 2.5", "[account].per_day must be a positive integer, got 2.5"),
        ("[account]\nper_hour = true", "[account].per_hour must be a positive integer, got true"),
        ("[recipient]\nper_week = -1", "[recipient].per_week must be a positive integer, got -1"),
        (
            "[recipient]\nmin_gap_s = -1",
            "[recipient].min_gap_s must be a non-negative number of seconds, got -1",
        ),
        (
            "[account]\nmin_gap_s = -1",
            "[account].min_gap_s must be a non-negative number of seconds, got -1",
        ),
        (
            "[account]\nmax_gap_s = inf",
            "[account].max_gap_s must be a non-negative number of seconds, got inf",
        ),
        (
            "[account]\nmin_gap_s = 8\nmax_gap_s = 2",
            "[account].max_gap_s must be at least min_gap_s (8), got 2",
        ),
        (
            '[account]\nquiet_hours = "22-8"',
            '[account].quiet_hours must be a local-time range "HH:MM-HH:MM" such as '
            '"22:00-08:00", got "22-8"',
        ),
        ('[account]\nquiet_hours = "25:00-08:00"', 'got "25:00-08:00"'),
        ('[account]\nquiet_hours = "22:61-08:00"', 'got "22:61-08:00"'),
        ('[account]\nquiet_hours = "24:00-08:00"', 'got "24:00-08:00"'),
        ("[account]\nquiet_hours = 22", "[account].quiet_hours must be a local-time range"),
        (
            '[account]\nquiet_hours = "08:00-08:00"',
            '[account].quiet_hours must be a range with different ends, got "08:00-08:00"',
        ),
    ],
)
def test_a_bad_value_names_file_field_and_expectation(text: str, message: str) -> None:
    got = error_of(text)
    assert got.startswith("rate_limits/mock.toml: ")
    assert message in got
    assert "\n" not in got


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[acount]\nper_day = 1",
            "unknown table [acount] (did you mean [account]? known: [account], [recipient])",
        ),
        ("[account]\nper_mintue = 5", "unknown key [account].per_mintue (did you mean per_minute?"),
        (
            "[recipient]\nper_month = 5",
            "unknown key [recipient].per_month (known: per_day, per_week, min_gap_s)",
        ),
        ("per_minute = 5", "unknown top-level key per_minute"),
        ("account = 5", "account must be a table [account], got 5"),
        ("[account.extra]\nx = 1", "unknown key [account].extra"),
    ],
)
def test_unknown_tables_and_keys_are_errors(text: str, message: str) -> None:
    assert message in error_of(text)


def test_a_toml_syntax_error_names_file_and_line() -> None:
    got = error_of("[account]\nper_minute = 5\nper_hour = \n")
    assert got == "rate_limits/mock.toml: line 3: invalid TOML: Invalid value (column 12)"


def test_load_policies_reads_every_file_and_names_them_after_it(tmp_path: Path) -> None:
    (tmp_path / "default.toml").write_text("[account]\nper_day = 100\n")
    (tmp_path / "wecom.toml").write_text("[account]\nper_minute = 4\n")
    (tmp_path / "notes.txt").write_text("not a policy")
    policies = load_policies(tmp_path)
    assert sorted(policies) == ["default", "wecom"]
    assert policies["wecom"].account.per_minute == 4
    assert policies["wecom"].source == str(tmp_path / "wecom.toml")


def test_one_malformed_file_fails_the_whole_load(tmp_path: Path) -> None:
    (tmp_path / "default.toml").write_text("[account]\nper_day = 100\n")
    (tmp_path / "sms.toml").write_text('[account]\nquiet_hours = "late"\n')
    with pytest.raises(UserError, match=r"sms\.toml: \[account\]\.quiet_hours"):
        load_policies(tmp_path)


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_bytes(b"[account]\n# \xff\n")
    with pytest.raises(UserError, match=r"bad\.toml: not UTF-8 text"):
        load_policies(tmp_path)


def test_a_missing_directory_is_an_error_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="rate-limit policy directory not found"):
        load_policies(tmp_path / "nope")
    assert load_policies(tmp_path / "nope", missing_ok=True) == {}


def test_the_shipped_policies_are_valid_and_commented() -> None:
    directory = ROOT / "rate_limits"
    policies = load_policies(directory)
    expected = {"default", "mock", "wecom", "telegram", "whatsapp", "sms", "smtp"}
    assert expected <= set(policies)
    for name in expected:
        assert (directory / f"{name}.toml").read_text().lstrip().startswith("#"), name
    assert str(policies["sms"].account.quiet_hours) == "21:00-08:00"
    assert policies["telegram"].account.per_second == 25
    assert policies["mock"].account.per_minute == 120


POLICIES = {name: Policy(name) for name in ("default", "wecom", "fast")}


def test_an_account_uses_the_policy_it_names() -> None:
    assert resolve_policy(POLICIES, "fast", "wecom").name == "fast"


def test_without_a_name_the_channel_policy_applies_then_default() -> None:
    assert resolve_policy(POLICIES, None, "wecom").name == "wecom"
    assert resolve_policy(POLICIES, None, "telegram") is POLICIES["default"]


def test_a_named_but_missing_policy_lists_the_available_ones() -> None:
    with pytest.raises(UserError) as caught:
        resolve_policy(POLICIES, "slow", "wecom")
    assert str(caught.value) == (
        "rate-limit policy 'slow' does not exist (available: default, fast, wecom)"
    )


def test_without_a_default_file_the_built_in_default_limits_nothing() -> None:
    assert resolve_policy({}, None, "mock") is UNLIMITED_DEFAULT
    assert resolve_policy({}, "default", "mock") is UNLIMITED_DEFAULT
    assert UNLIMITED_DEFAULT.account.is_unlimited
