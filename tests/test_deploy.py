"""The deployment (Dockerfile, docker-compose.yml, .env.example) says what siyu can do.

Docker cannot run here, so the files are read as Docker would read them (`tests/support/
deploy.py`) and every siyu command in them is parsed by the real `siyu` command line: a
misspelt option or a command that does not exist fails here, not in production. `make
compose-check` validates the same files with the real `docker-compose config`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
from sqlalchemy.engine import make_url

from tests.conftest import ROOT
from tests.support.cli import run_siyu
from tests.support.deploy import (
    Instruction,
    MissingVariable,
    command_args,
    defaults,
    dockerfile,
    load_compose,
    published,
    read_env_file,
    variables,
)
from worker.cli import _register, app
from worker.config import Settings

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

# What an operator must choose: compose refuses to start without them.
REQUIRED = {"POSTGRES_PASSWORD": "pg-pass", "REDIS_PASSWORD": "redis-pass", "SIYU_API_TOKEN": "tok"}
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}
PIP = re.compile(r"\bpip[0-9.]*\b")  # pip, pip3, python -m pip
# The roles issue 11 asks the stack for, each a long-running siyu command but `migrate`.
SIYU_ROLES = {"migrate", "worker", "beat", "api"}


def stack_env() -> dict[str, str]:
    """`docker compose --env-file .env.example` with the required values exported."""
    return {**read_env_file(ENV_EXAMPLE), **REQUIRED}


STACK = load_compose(COMPOSE, stack_env())
# The same with nothing but the required values: what Compose's own defaults give.
BARE_STACK = load_compose(COMPOSE, REQUIRED)
SERVICES: dict[str, dict[str, Any]] = STACK["services"]
# Services that run the image built from this repository: every one of them runs `siyu`.
SIYU_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)
STEPS = dockerfile(DOCKERFILE)
FINAL = [step for step in STEPS if step.stage == max(s.stage for s in STEPS)]


def only(steps: list[Instruction], keyword: str) -> Instruction:
    found = [step for step in steps if step.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {found}"
    return found[0]


def siyu_commands() -> dict[str, list[str]]:
    """Every argument list the image's `siyu` entry point is given: each siyu service's
    command, and the image's default CMD."""
    found = {name: command_args(SERVICES[name]["command"]) for name in SIYU_SERVICES}
    default = only(FINAL, "CMD").exec_form()
    assert default is not None, "CMD must be in exec form (a JSON array)"
    return {**found, "Dockerfile CMD": default}


def resolve(args: list[str]) -> tuple[Any, list[str], list[str]]:
    """The `siyu` command that `args` name, its path and the arguments left for it."""
    _register()
    command: Any = typer.main.get_command(app)
    path, rest = [], list(args)
    while rest and rest[0] in getattr(command, "commands", {}):
        command = command.commands[rest[0]]
        path.append(rest.pop(0))
    return command, path, rest


def accepted_options(command: Any) -> set[str]:
    return {"--help"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


def used_options(args: list[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in args if arg.startswith("-") and arg != "-"}


def option_value(args: list[str], option: str) -> str | None:
    return args[args.index(option) + 1] if option in args else None


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the `- NAME=value` spelling
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


COMMANDS = siyu_commands()


def test_the_stack_has_every_role_and_each_runs_the_siyu_image() -> None:
    assert set(SIYU_SERVICES) >= SIYU_ROLES, SIYU_SERVICES
    for name in SIYU_SERVICES:
        assert "entrypoint" not in SERVICES[name], f"{name}: the image's ENTRYPOINT is `siyu`"
    assert only(FINAL, "ENTRYPOINT").exec_form() == ["siyu"]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_is_a_real_siyu_command_with_options_it_accepts(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    args = COMMANDS[name]
    command, path, rest = resolve(args)
    assert path and not hasattr(command, "commands"), (
        f"{name}: `siyu {' '.join(args)}` is not a siyu command"
    )
    unknown = used_options(rest) - accepted_options(command)
    assert not unknown, f"{name}: `siyu {' '.join(path)}` has no option {sorted(unknown)}"
    command.make_context(" ".join(["siyu", *path]), list(rest))  # every value parses
    outcome = run_siyu(capsys, *args, "--help")  # as the console script reads it
    assert (outcome.code, outcome.stderr) == (0, ""), (name, outcome)


@pytest.mark.parametrize("name", SIYU_SERVICES)
def test_every_siyu_service_uses_the_stacks_postgresql_and_redis(name: str) -> None:
    env = environment(SERVICES[name])
    postgres = environment(SERVICES["postgres"])
    db = make_url(env["SIYU_DATABASE_URL"])
    assert db.drivername == "postgresql+psycopg"
    assert (db.host, db.username, db.password, db.database) == (
        "postgres",
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    redis = urlsplit(env["SIYU_REDIS_URL"])
    redis_args = command_args(SERVICES["redis"]["command"])
    assert redis.scheme == "redis" and redis.hostname == "redis"
    assert redis.password == option_value(redis_args, "--requirepass") == REQUIRED["REDIS_PASSWORD"]


@pytest.mark.parametrize("name", SIYU_SERVICES)
def test_every_siyu_services_environment_is_a_valid_configuration(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Each SIYU_ name is a setting (a misspelt one would be ignored) and each value parses."""
    env = environment(SERVICES[name])
    fields = {k.removeprefix("SIYU_").lower(): v for k, v in env.items() if k.startswith("SIYU_")}
    assert set(fields) <= set(Settings.model_fields), set(fields) - set(Settings.model_fields)
    for key in [key for key in os.environ if key.startswith("SIYU_")]:
        monkeypatch.delenv(key)  # the container's values alone, not this process's
    settings = Settings.model_validate(fields)
    assert settings.database_url == env["SIYU_DATABASE_URL"]


def test_an_api_listening_beyond_loopback_has_a_token() -> None:
    apis = [name for name in SIYU_SERVICES if COMMANDS[name][:1] == ["api"]]
    assert apis
    for name in apis:
        host = option_value(COMMANDS[name], "--host") or "127.0.0.1"
        token = environment(SERVICES[name]).get("SIYU_API_TOKEN")
        assert host in LOOPBACK_HOSTS or token == REQUIRED["SIYU_API_TOKEN"], name


@pytest.mark.parametrize("variable", sorted(REQUIRED))
def test_compose_refuses_to_start_while_a_required_value_is_blank(variable: str) -> None:
    assert read_env_file(ENV_EXAMPLE)[variable] == "", "a copied .env.example must not start"
    with pytest.raises(MissingVariable) as refused:
        load_compose(COMPOSE, {**stack_env(), variable: ""})
    assert refused.value.name == variable


def test_env_example_documents_every_variable_the_stack_reads_with_its_default() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    example = read_env_file(ENV_EXAMPLE)
    assert not variables(text) - set(example), "undocumented"
    wrong = {name: (value, example[name]) for name, value in defaults(text).items()}
    assert {name: pair for name, pair in wrong.items() if pair[0] != pair[1]} == {}


def test_redis_keeps_what_it_acknowledged_refuses_to_evict_and_wants_a_password() -> None:
    redis = SERVICES["redis"]
    args = command_args(redis["command"])
    assert option_value(args, "--appendonly") == "yes"
    assert option_value(args, "--maxmemory-policy") == "noeviction"
    assert option_value(args, "--requirepass") == REQUIRED["REDIS_PASSWORD"]
    probe = " ".join(command_args(redis["healthcheck"]["test"]))
    assert "redis-cli" in probe and "PONG" in probe
    password = environment(redis).get("REDISCLI_AUTH") or option_value(probe.split(), "-a")
    assert password in (REQUIRED["REDIS_PASSWORD"], '"$REDIS_PASSWORD"'), probe
    assert named_volume_at(redis, "/data")


def test_postgres_keeps_its_data_in_a_named_volume_and_reports_readiness() -> None:
    postgres = SERVICES["postgres"]
    assert named_volume_at(postgres, "/var/lib/postgresql/data")
    assert "pg_isready" in " ".join(command_args(postgres["healthcheck"]["test"]))


def named_volume_at(service: Mapping[str, Any], target: str) -> bool:
    mounts = [str(v).split(":") for v in service.get("volumes", [])]
    return any(m[1:2] == [target] and m[0] in (STACK.get("volumes") or {}) for m in mounts)


@pytest.mark.parametrize("stack", [STACK, BARE_STACK], ids=[".env.example", "defaults"])
@pytest.mark.parametrize("name", sorted(SERVICES))
def test_nothing_is_published_beyond_loopback_and_never_the_databases(
    stack: dict[str, Any], name: str
) -> None:
    ports = published(stack["services"][name])
    assert all(port.loopback_only for port in ports), ports
    if name in ("postgres", "redis"):
        assert not ports, f"{name} is for the stack's network only"


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_workers_and_beats_can_be_scaled(name: str) -> None:
    service = SERVICES[name]
    assert "container_name" not in service
    assert not service.get("ports"), "a fixed host port would stop a second replica"


@pytest.mark.parametrize("name", sorted(SIYU_ROLES - {"migrate"}))
def test_long_running_services_start_after_a_successful_init_and_restart(name: str) -> None:
    service = SERVICES[name]
    assert service["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert service["restart"] in ("unless-stopped", "always", "on-failure")


def test_migrate_runs_init_once_after_postgresql_answers() -> None:
    migrate = SERVICES["migrate"]
    assert COMMANDS["migrate"] == ["init"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_the_image_is_built_in_stages_from_the_lock_and_runs_as_a_user() -> None:
    assert len([s for s in STEPS if s.keyword == "FROM"]) >= 2
    installs = [s for s in STEPS if s.keyword == "RUN" and "pip install" in s.args]
    resolving = [s for s in installs if "--no-deps" not in s.args]
    assert resolving and all("-c constraints.txt" in s.args for s in resolving), resolving
    assert any(".[postgres]" in s.args for s in resolving)
    assert not [s for s in installs if s in FINAL], "the final stage installs nothing"
    assert any(s.keyword == "COPY" and s.args.startswith("--from=") for s in FINAL)
    user = only(FINAL, "USER").args.split(":")[0]
    assert user not in ("root", "0"), user
    for step in (only(FINAL, "ENTRYPOINT"), only(FINAL, "CMD")):
        assert not PIP.search(step.args), step
    copied = " ".join(s.args for s in FINAL if s.keyword == "COPY")
    assert "templates" in copied and "rate_limits" in copied
    assert only(FINAL, "HEALTHCHECK").args.upper() != "NONE"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_no_service_installs_anything_when_it_starts(name: str) -> None:
    service = SERVICES[name]
    words = command_args(service.get("command", [])) + command_args(service.get("entrypoint", []))
    assert not [word for word in words if PIP.search(word)], words


def test_the_build_context_leaves_out_environments_state_and_secrets() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", ".siyu", "**/*.db", ".env"} <= set(ignored)
