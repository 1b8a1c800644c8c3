"""Every member rendered before anything is sent, and a start that knows what it starts.

Through the real `siyu` entry point (in-process) on SQLite and PostgreSQL with real Redis:
`campaigns create` and `campaigns start` render the template for every member, not a
sample; `--skip-unrenderable` records the failures as `skipped` (`render_error`); `start`
refuses a campaign that would send nothing (unless `--force`) and says how many members a
partial one leaves and why; `campaigns plan` counts owner-bound members whose owner is not a
sender and members already at a recipient cap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from tests.support.cli import Outcome, Siyu, siyu_on
from tests.support.rows import drain
from tests.support.world import add_accounts, add_contacts, make_context, write_policies
from worker.campaigns.materialise import materialise
from worker.runtime import Context, set_context
from worker.store import tables
from worker.store.models import Suppression, utcnow

C, CT, D, R = tables.campaigns.c, tables.contacts.c, tables.deliveries.c, tables.campaign_runs.c
CITY = "{{ contact.name }}, {{ contact.attrs.city }} 的同学们在等你\n"
POLICIES = {
    "night": '[account]\nper_minute = 60\nquiet_hours = "22:00-08:00"\n',
    "slow": "[account]\nper_minute = 1\n",
    "capped": "[recipient]\nper_day = 1\n",
}


@dataclass(frozen=True)
class World:
    ctx: Context
    run: Siyu

    def ok(self, *args: str) -> Outcome:
        outcome = self.run(*args)
        assert outcome.code == 0 and "Traceback" not in outcome.stderr, outcome
        return outcome

    def refused(self, *args: str) -> str:
        """Exit 2, nothing on stdout, no traceback; the whole error (it may span lines)."""
        outcome = self.run(*args)
        assert "Traceback" not in outcome.stdout + outcome.stderr, outcome
        assert (outcome.code, outcome.stdout) == (2, ""), outcome
        assert outcome.stderr.startswith("error: "), outcome
        return outcome.stderr

    def status(self, name: str) -> str:
        with self.ctx.engine.connect() as conn:
            return str(conn.execute(select(C.status).where(C.name == name)).scalar_one())

    def plan(self, name: str) -> dict[str, Any]:
        return json.loads(self.ok("campaigns", "plan", name, "--json").stdout)  # type: ignore[no-any-return]


@pytest.fixture
def world(
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[World]:
    """Accounts a1, a2 (memory, unlimited); templates `plain` and `city`; segment `all`."""
    policies = write_policies(tmp_path / "rate_limits", POLICIES)
    ctx = make_context(db_url, redis_url, tmp_path, rate_limits_dir=policies, claim_batch=50)
    (tmp_path / "templates" / "city.j2").write_text(CITY, encoding="utf-8")
    (tmp_path / "templates" / "plain.j2").write_text("{{ contact.name }} 开课啦", encoding="utf-8")
    for name, value in {
        "SIYU_REDIS_URL": redis_url,
        "SIYU_TEMPLATES_DIR": str(tmp_path / "templates"),
        "SIYU_RATE_LIMITS_DIR": str(policies),
        "SIYU_STATE_DIR": str(tmp_path / ".siyu"),
    }.items():
        monkeypatch.setenv(name, value)
    set_context(None)
    with siyu_on(db_url, monkeypatch, capsys) as run:
        add_accounts(ctx.engine, ["a1", "a2"])
        w = World(ctx, run)
        w.ok("segments", "add", "all", "--where", "tag = python", "--allow-unknown")
        yield w
    set_context(None)
    ctx.engine.dispose()


def create(world: World, *extra: str, template: str = "city") -> Outcome:
    return world.run(
        "campaigns", "create", "c1", "--segment", "all", "--template", template,
        "--accounts", "a1,a2", *extra,
    )  # fmt: skip


def lose_city(world: World, external_id: str) -> None:
    with world.ctx.engine.begin() as conn:
        conn.execute(update(tables.contacts).where(CT.external_id == external_id).values(attrs={}))


def window(minutes: int, *, at: datetime | None = None) -> tuple[str, str, str, str]:
    begin = at or utcnow().replace(tzinfo=UTC) + timedelta(seconds=30)
    end = begin + timedelta(minutes=minutes)
    return "--start", begin.isoformat(), "--end", end.isoformat()


def run_rows(world: World) -> dict[str, tuple[str, str | None, str | None]]:
    """external_id -> (state, reason, last error) of the campaign's deliveries."""
    with world.ctx.engine.connect() as conn:
        rows = conn.execute(
            select(CT.external_id, D.state, D.reason, D.last_error).join(
                tables.contacts, CT.id == D.contact_id
            )
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def send_everything(world: World) -> None:
    """Materialise the campaign's run and drain its lanes in-process (as a worker would)."""
    ctx = world.ctx
    with ctx.engine.connect() as conn:
        run_id = conn.execute(select(func.max(R.id))).scalar_one()
        accounts = list(conn.execute(select(tables.accounts.c.id)).scalars())
    materialise(ctx, run_id)
    drain(ctx, accounts)


# -- item 4: every member is rendered ---------------------------------------------------------


def test_create_renders_every_member_and_names_the_10001st_that_fails(world: World) -> None:
    add_contacts(world.ctx.engine, 10_001)
    lose_city(world, "u010001")
    error = world.refused(
        "campaigns", "create", "c1", "--segment", "all", "--template", "city", "--accounts", "a1"
    )
    assert "templates/city.j2 cannot be rendered for 1 of 10,001 members:" in error
    assert "templates/city.j2 line 1: 'dict object' has no attribute 'city'" in error
    assert "(external_id u010001; 1 member)" in error
    assert "create it with --skip-unrenderable" in error
    assert json.loads(world.ok("campaigns", "list", "--json").stdout) == [], "nothing stored"


def test_skip_unrenderable_creates_and_start_says_what_is_skipped(world: World) -> None:
    add_contacts(world.ctx.engine, 10_001)
    lose_city(world, "u010001")
    created = create(world, "--skip-unrenderable")
    assert created.code == 0, created
    started = world.ok("campaigns", "start", "c1")
    assert (
        "warning: 1 of 10,001 members will not be sent: 1 render_error (cannot be rendered"
        in started.stderr
    )


def test_start_renders_again_and_refuses_a_member_changed_since_create(world: World) -> None:
    add_contacts(world.ctx.engine, 6)
    assert create(world).code == 0
    lose_city(world, "u000004")
    lose_city(world, "u000006")
    error = world.refused("campaigns", "start", "c1")
    assert "cannot be rendered for 2 of 6 members" in error
    assert "(external_id u000004, u000006; 2 members)" in error
    assert "run `siyu campaigns edit c1 --skip-unrenderable` and start it again" in error
    assert world.status("c1") == "draft"


def test_skipped_members_are_recorded_as_render_error_and_the_rest_is_sent(
    world: World,
) -> None:
    add_contacts(world.ctx.engine, 6)
    assert create(world).code == 0
    lose_city(world, "u000004")
    world.ok("campaigns", "edit", "c1", "--skip-unrenderable")
    assert world.ok("campaigns", "show", "c1", "--json").stdout  # still shows
    started = world.ok("campaigns", "start", "c1")
    assert "1 of 6 members will not be sent: 1 render_error" in started.stderr
    send_everything(world)
    rows = run_rows(world)
    state, reason, error = rows.pop("u000004")
    assert (state, reason) == ("skipped", "render_error")
    assert error is not None and "templates/city.j2 line 1" in error
    assert {r[0] for r in rows.values()} == {"sent"} and len(rows) == 5


def test_without_the_flag_a_member_broken_after_start_fails_at_send_time(world: World) -> None:
    add_contacts(world.ctx.engine, 3)
    assert create(world).code == 0
    world.ok("campaigns", "start", "c1")
    lose_city(world, "u000002")  # after every check: the lane still catches it
    send_everything(world)
    assert run_rows(world)["u000002"][:2] == ("failed", "render_error")


def test_suppressed_members_are_not_rendered(world: World) -> None:
    """A member who will be skipped anyway (opted out) cannot block the campaign."""
    add_contacts(world.ctx.engine, 3)
    lose_city(world, "u000003")
    with world.ctx.engine.begin() as conn:
        conn.execute(Suppression.__table__.insert(), [{"contact_id": 3, "reason": "opted_out"}])  # type: ignore[attr-defined]
    assert create(world).code == 0


# -- item 5: start knows what it is starting --------------------------------------------------


def use_policy(world: World, policy: str, *accounts: str) -> None:
    A = tables.accounts.c
    with world.ctx.engine.begin() as conn:
        conn.execute(update(tables.accounts).where(A.name.in_(accounts)).values(policy=policy))


def tonight(hour: int) -> datetime:
    """Today or tomorrow at `hour`:00 in Shanghai, at least an hour from now."""
    now = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    at = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return at if at > now + timedelta(hours=1) else at + timedelta(days=1)


def test_a_window_inside_quiet_hours_is_refused_unless_forced(world: World) -> None:
    add_contacts(world.ctx.engine, 5)
    use_policy(world, "night", "a1", "a2")
    assert create(world, *window(30, at=tonight(23)), template="plain").code == 0
    error = world.refused("campaigns", "start", "c1")
    assert "campaign 'c1' would send nothing: none of its 5 members can be sent" in error
    assert "5 no_capacity (cannot be sent before the end time)" in error
    assert "quiet hours (22:00-08:00 Asia/Shanghai) cover the whole window" in error
    assert "--force" in error
    assert world.status("c1") == "draft"
    forced = world.ok("campaigns", "start", "c1", "--force")
    assert "campaign c1 is scheduled" in forced.stdout
    assert world.status("c1") == "scheduled"


def test_a_campaign_whose_senders_are_all_paused_is_refused(world: World) -> None:
    add_contacts(world.ctx.engine, 40)
    assert create(world, *window(30), template="plain").code == 0
    world.ok("accounts", "pause", "a1")
    world.ok("accounts", "pause", "a2")
    error = world.refused("campaigns", "start", "c1")
    assert "account a1 is paused" in error and "account a2 is paused" in error


def test_a_campaign_with_nobody_to_send_to_is_refused(world: World) -> None:
    add_contacts(world.ctx.engine, 2)
    assert create(world, template="plain").code == 0
    with world.ctx.engine.begin() as conn:
        conn.execute(
            Suppression.__table__.insert(),  # type: ignore[attr-defined]
            [{"contact_id": 1, "reason": "opted_out"}, {"contact_id": 2, "reason": "opted_out"}],
        )
    error = world.refused("campaigns", "start", "c1")
    assert "none of its 2 members can be sent: 2 opted_out" in error
    world.run("segments", "add", "nobody", "--where", "tag = python and tag != python")
    world.ok("campaigns", "edit", "c1", "--segment", "nobody")
    assert "its segment has no members" in world.refused("campaigns", "start", "c1")


def test_a_partial_fit_starts_and_says_how_many_will_not_be_sent(world: World) -> None:
    add_contacts(world.ctx.engine, 30)
    use_policy(world, "slow", "a1", "a2")
    assert create(world, *window(10), template="plain").code == 0
    started = world.ok("campaigns", "start", "c1")
    assert "campaign c1 is scheduled" in started.stdout
    [warning] = [ln for ln in started.stderr.splitlines() if "will not be sent" in ln]
    plan = world.plan("c1")
    missing = 30 - plan["will_send"]
    assert 0 < missing < 30
    assert warning.startswith(f"warning: {missing} of 30 members will not be sent: {missing} ")
    assert "can send 10 more before the end" in warning or "can send 9 more" in warning


# -- item 5: the plan counts what it ignored ---------------------------------------------------


def test_plan_counts_members_whose_owner_is_not_a_sender(world: World) -> None:
    outsider = add_accounts(world.ctx.engine, ["outsider"])["outsider"]
    add_contacts(world.ctx.engine, 4)
    add_contacts(world.ctx.engine, 2, start=5, owner_of={5: outsider, 6: outsider})
    assert create(world, *window(30), template="plain").code == 0
    plan = world.plan("c1")
    assert plan["members"] == 6
    assert plan["excluded"] == {"owner_not_in_campaign": 2}
    assert sum(a["assigned"] for a in plan["accounts"]) == 4
    assert plan["fits"] is False and plan["will_send"] == 4
    text = world.ok("campaigns", "plan", "c1").stdout
    assert "does NOT fit: 2 of 6 would not be sent" in text
    assert "owner_not_in_campaign" in text


def test_plan_counts_members_held_back_by_recipient_caps(world: World) -> None:
    """Two of five got a marketing message today; the policy allows one a day."""
    add_contacts(world.ctx.engine, 5)
    use_policy(world, "capped", "a1", "a2")
    assert create(world, template="plain").code == 0
    world.ok("campaigns", "start", "c1")
    send_everything(world)
    with world.ctx.engine.begin() as conn:  # only u000001 and u000002 were really reached
        conn.execute(
            update(tables.deliveries).where(D.contact_id > 2).values(state="failed", sent_at=None)
        )
    world.ok(
        "campaigns", "create", "c2", "--segment", "all", "--template", "plain",
        "--accounts", "a1,a2",
    )  # fmt: skip
    plan = world.plan("c2")
    assert plan["capped"] == 2 and plan["not_sent"] == {"frequency_cap": 2}
    assert plan["fits"] is False and plan["will_send"] == 3
    service = world.run(
        "campaigns", "create", "c3", "--segment", "all", "--template", "plain",
        "--accounts", "a1", "--kind", "service",
    )  # fmt: skip
    assert service.code == 0
    assert world.plan("c3")["capped"] == 0, "recipient caps are for marketing only"


def test_the_plan_assigns_exactly_as_materialisation_does(world: World) -> None:
    """Same SQL: per account and per skip reason, the plan is what the run then holds."""
    outsider = add_accounts(world.ctx.engine, ["outsider"])["outsider"]
    add_contacts(world.ctx.engine, 200)
    add_contacts(world.ctx.engine, 3, start=201, owner_of={201: outsider, 202: outsider})
    add_contacts(world.ctx.engine, 2, start=204, channel="mock")
    with world.ctx.engine.begin() as conn:
        conn.execute(Suppression.__table__.insert(), [{"contact_id": 7, "reason": "opted_out"}])  # type: ignore[attr-defined]
    assert create(world, template="plain").code == 0
    plan = world.plan("c1")
    world.ok("campaigns", "start", "c1")
    with world.ctx.engine.connect() as conn:
        run_id = conn.execute(select(func.max(R.id))).scalar_one()
    materialise(world.ctx, run_id)
    A = tables.accounts.c
    with world.ctx.engine.connect() as conn:
        pending = dict(
            conn.execute(
                select(A.name, func.count())
                .join(tables.accounts, A.id == D.account_id)
                .where(D.state == "pending")
                .group_by(A.name)
            ).all()
        )
        skipped = dict(
            conn.execute(
                select(D.reason, func.count()).where(D.state == "skipped").group_by(D.reason)
            ).all()
        )
    assert {a["account"]: a["assigned"] for a in plan["accounts"]} == pending
    assert (
        plan["excluded"]
        == skipped
        == {
            "opted_out": 1,
            "owner_not_in_campaign": 2,
            "no_reachable_account": 2,
        }
    )


def test_an_edit_turns_skipping_on_and_off(world: World) -> None:
    add_contacts(world.ctx.engine, 3)
    assert create(world).code == 0
    world.ok("campaigns", "edit", "c1", "--skip-unrenderable")
    lose_city(world, "u000002")
    refused = world.refused("campaigns", "edit", "c1", "--refuse-unrenderable")
    assert "cannot be rendered for 1 of 3 members" in refused, "an edit is checked like a create"
    world.ok("campaigns", "start", "c1")  # still skipping: the refused edit changed nothing
    both = world.refused("campaigns", "edit", "c1", "--skip-unrenderable", "--refuse-unrenderable")
    assert "are alternatives" in both
