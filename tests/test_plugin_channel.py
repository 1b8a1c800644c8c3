"""A channel from a separately installed package, found through the `siyu.channels` entry-point
group: `tests/plugins/siyu-example-channel`, which `make install` installs like any third-party
package. Nothing here registers it by hand."""

from __future__ import annotations

import json
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.support.cli import one_error_line, siyu_on
from tests.support.rows import drain, states
from tests.support.world import add_campaign, add_contacts, make_context, start
from worker.campaigns.materialise import materialise
from worker.channels.registry import ENTRY_POINT_GROUP, channel_class, known_channels
from worker.store import tables

A = tables.accounts.c


@pytest.fixture(autouse=True)
def installed() -> None:
    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert "jsonl" in names, "the example channel package is not installed: run `make install`"


def test_the_entry_point_names_the_packages_class() -> None:
    assert known_channels()["jsonl"] == "siyu_example_channel:JsonlChannel"
    cls = channel_class("jsonl")
    assert cls.__module__ == "siyu_example_channel" and cls.scheme == "jsonl"


def test_a_campaign_goes_out_through_the_third_party_channel(
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    outbox = tmp_path / "outbox.jsonl"
    with siyu_on(db_url, monkeypatch, capsys) as siyu:
        added = siyu("accounts", "add", "j1", "--channel", "jsonl", "--config", f"path={outbox}")
        assert added.code == 0, added
        bad = siyu(
            "accounts", "add", "j2", "--channel", "jsonl",
            "--config", f"path={tmp_path / 'missing' / 'x.jsonl'}",
        )  # fmt: skip
    assert "account 'j2': config path must be a file in an existing directory" in one_error_line(
        bad
    )
    with ctx.engine.connect() as conn:
        (account_id,) = conn.execute(tables.accounts.select().with_only_columns(A.id)).one()
    add_contacts(ctx.engine, 12, channel="jsonl")
    add_campaign(ctx, "c1", ["j1"])
    run = start(ctx, "c1")
    assert run.id is not None
    materialise(ctx, run.id)
    drain(ctx, [account_id])
    assert states(ctx) == Counter({"sent": 12})
    lines = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["to"] for line in lines) == [f"u{i:06d}" for i in range(1, 13)]
    assert len({line["key"] for line in lines}) == 12
    assert {line["campaign"] for line in lines} == {"c1"}
    ctx.engine.dispose()
