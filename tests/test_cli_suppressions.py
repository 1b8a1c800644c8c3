"""`contacts suppress | unsuppress | suppressions` through the real `siyu` entry point.

Each test runs on SQLite and PostgreSQL: the CLI's configured database is the `db_url` one,
the test reads it back through its own `engine`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.support.cli import Siyu, one_error_line, siyu_on
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns.materialise import materialise
from worker.channels.registry import known_channels
from worker.store import tables

CT, S, D = tables.contacts.c, tables.suppressions.c, tables.deliveries.c


@pytest.fixture
def siyu(
    db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Siyu]:
    """`siyu(*args)` runs the console script in-process against the test database.

    Contacts u000001..u000005 on `memory`, u000001 and u000002 also on `mock`.
    """
    with siyu_on(db_url, monkeypatch, capsys) as run:
        add_contacts(engine, 5, channel="memory")
        add_contacts(engine, 2, channel="mock")
        yield run


def suppressed(engine: Engine) -> dict[tuple[str, str], str]:
    """(channel, external_id) -> reason of every suppression."""
    query = select(CT.channel, CT.external_id, S.reason).join(
        tables.contacts, CT.id == S.contact_id
    )
    with engine.connect() as conn:
        return {(r[0], r[1]): r[2] for r in conn.execute(query)}


def created_at(engine: Engine) -> dict[int, datetime]:
    with engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(select(S.contact_id, S.created_at))}


def write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_suppressing_ids_records_them_as_opted_out_on_every_channel_they_exist_on(
    siyu: Siyu, engine: Engine
) -> None:
    outcome = siyu("contacts", "suppress", "u000001", "u000003")

    assert (outcome.code, outcome.stderr) == (0, "")
    assert outcome.stdout == "suppressed 3 contacts for 2 external_id(s)\n"
    assert suppressed(engine) == {
        ("memory", "u000001"): "opted_out",
        ("mock", "u000001"): "opted_out",
        ("memory", "u000003"): "opted_out",
    }


def test_with_a_channel_only_that_channels_contact_is_suppressed_with_the_reason(
    siyu: Siyu, engine: Engine
) -> None:
    outcome = siyu("contacts", "suppress", "u000001", "--channel", "mock", "--reason", "投诉")

    assert outcome.stdout == "suppressed 1 contact\n"
    assert suppressed(engine) == {("mock", "u000001"): "投诉"}


def test_unknown_ids_refuse_the_request_naming_each_and_writing_nothing(
    siyu: Siyu, engine: Engine
) -> None:
    line = one_error_line(siyu("contacts", "suppress", "u000001", "ghost-a", "ghost-b"))

    assert line == (
        "error: 2 external_id(s) match no contact, nothing suppressed: 'ghost-a', 'ghost-b'"
    )
    assert suppressed(engine) == {}


def test_hundreds_of_unknown_ids_are_counted_and_the_first_ones_named(
    siyu: Siyu, engine: Engine
) -> None:
    ghosts = [f"ghost{i:03d}" for i in range(300)]

    line = one_error_line(siyu("contacts", "suppress", "u000001", *ghosts))

    assert line.startswith("error: 300 external_id(s) match no contact, nothing suppressed: ")
    assert "'ghost000', 'ghost001'" in line and line.endswith(", and 290 more")
    assert "ghost010" not in line
    assert suppressed(engine) == {}


def test_an_id_that_exists_only_on_another_channel_is_unknown_on_the_given_one(
    siyu: Siyu, engine: Engine
) -> None:
    line = one_error_line(siyu("contacts", "suppress", "u000004", "--channel", "mock"))

    assert "match no contact of channel 'mock'" in line and "'u000004'" in line
    assert suppressed(engine) == {}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("u000001", "--channel", "carrier-pigeon"), "unknown channel 'carrier-pigeon'"),
        (("u000001", "--reason", "  "), "the reason must not be empty"),
        (("u000001", "  "), "an empty external_id was given"),
        ((), "give either EXTERNAL_ID... or --file FILE.csv"),
        (("u000001", "--file", "ids.csv"), "give either EXTERNAL_ID... or --file FILE.csv"),
    ],
    ids=["unknown-channel", "empty-reason", "empty-id", "neither", "both"],
)
def test_bad_arguments_are_one_clear_line_and_write_nothing(
    siyu: Siyu, engine: Engine, args: tuple[str, ...], needle: str
) -> None:
    line = one_error_line(siyu("contacts", "suppress", *args))

    assert needle in line
    assert suppressed(engine) == {}


def test_suppressing_again_keeps_the_first_time_and_takes_only_an_explicit_new_reason(
    siyu: Siyu, engine: Engine
) -> None:
    siyu("contacts", "suppress", "u000002", "--channel", "memory", "--reason", "complaint")
    first = created_at(engine)

    again = siyu("contacts", "suppress", "u000002", "u000003", "--channel", "memory")
    kept = suppressed(engine)
    renamed = siyu("contacts", "suppress", "u000002", "--channel", "memory", "--reason", "blocked")

    assert again.stdout == "suppressed 2 contacts (1 already suppressed)\n"
    assert kept[("memory", "u000002")] == "complaint"  # no --reason: the stored one stays
    assert renamed.stdout == "suppressed 1 contact (1 already suppressed, reason updated on 1)\n"
    assert suppressed(engine)[("memory", "u000002")] == "blocked"
    assert {k: v for k, v in created_at(engine).items() if k in first} == first


def test_a_file_suppresses_its_rows_with_their_own_channel_and_reason(
    siyu: Siyu, engine: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "optouts.csv",
        "external_id,channel,reason,source\n"
        "u000001,mock,,sms\n"  # the --reason fills an empty cell
        "u000002,,退订,wecom\n"  # --channel fills an empty channel
        "u000003,,,web\n",
        bom=True,
    )

    outcome = siyu(
        "contacts", "suppress", "--file", str(path), "--channel", "memory", "--reason", "import"
    )

    assert (outcome.code, outcome.stderr) == (0, "")
    assert outcome.stdout == "suppressed 3 contacts\n"
    assert suppressed(engine) == {
        ("mock", "u000001"): "import",
        ("memory", "u000002"): "退订",
        ("memory", "u000003"): "import",
    }


def test_a_file_with_bad_rows_is_refused_whole_naming_the_file_and_each_line(
    siyu: Siyu, engine: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "bad.csv",
        "external_id,channel\n"
        "u000001,memory\n"
        " ,memory\n"
        "ghost,\n"
        "u000002,fax\n"
        "u000003\n"
        "u000004,mock\n",
    )

    line = one_error_line(siyu("contacts", "suppress", "--file", str(path)))

    known = ", ".join(sorted(known_channels()))  # tests may have registered fake channels
    assert "memory, mock" in known
    assert line == (
        f"error: {path}: 5 row(s) refused, nothing suppressed: "
        "line 3: empty external_id; "
        "line 4: no contact has external_id 'ghost'; "
        f"line 5: unknown channel 'fax' (known: {known}); "
        "line 6: malformed row: expected 2 fields, found 1; "
        "line 7: no contact of channel 'mock' has external_id 'u000004'"
    )
    assert suppressed(engine) == {}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("id,reason\nu000001,x\n", "the header has no 'external_id' column (found: id, reason)"),
        ("", "no header row"),
        (None, "no such file"),
    ],
    ids=["no-external-id-column", "empty", "missing"],
)
def test_a_file_that_cannot_be_read_as_a_suppression_list_is_refused(
    siyu: Siyu, engine: Engine, tmp_path: Path, content: str | None, needle: str
) -> None:
    path = tmp_path / "list.csv"
    if content is not None:
        write(path, content)

    line = one_error_line(siyu("contacts", "suppress", "--file", str(path)))

    assert str(path) in line and needle in line
    assert suppressed(engine) == {}


def test_unsuppress_lifts_and_notes_the_ids_it_could_not_act_on(siyu: Siyu, engine: Engine) -> None:
    siyu("contacts", "suppress", "u000001", "u000002")

    outcome = siyu("contacts", "unsuppress", "u000001", "u000003", "ghost", "--channel", "memory")

    assert outcome.code == 0
    assert outcome.stdout == "unsuppressed 1 contact\n"
    assert outcome.stderr.splitlines() == [
        "note: no such contact: 'ghost'",
        "note: not suppressed: 'u000003'",
    ]
    assert set(suppressed(engine)) == {
        ("mock", "u000001"),
        ("memory", "u000002"),
        ("mock", "u000002"),
    }


def test_unsuppress_when_no_id_names_a_contact_is_an_error(siyu: Siyu, engine: Engine) -> None:
    siyu("contacts", "suppress", "u000001")

    line = one_error_line(siyu("contacts", "unsuppress", "ghost", "u000001", "--channel", "sms"))
    line_channel = one_error_line(siyu("contacts", "unsuppress", "u000005", "--channel", "mock"))

    assert "unknown channel 'sms'" in line
    assert line_channel == (
        "error: 1 external_id(s) match no contact of channel 'mock', nothing unsuppressed: "
        "'u000005'"
    )
    assert len(suppressed(engine)) == 2


def test_suppressions_json_is_one_document_oldest_first(siyu: Siyu, engine: Engine) -> None:
    siyu("contacts", "suppress", "u000003", "--reason", "complaint")
    siyu("contacts", "suppress", "u000002", "--channel", "mock")

    outcome = siyu("contacts", "suppressions", "--json")

    assert (outcome.code, outcome.stderr) == (0, "")
    document = json.loads(outcome.stdout)
    assert [{k: v for k, v in row.items() if k != "created_at"} for row in document] == [
        {"external_id": "u000003", "channel": "memory", "reason": "complaint"},
        {"external_id": "u000002", "channel": "mock", "reason": "opted_out"},
    ]
    times = [datetime.fromisoformat(row["created_at"]) for row in document]
    assert all(t.utcoffset() is not None and t.utcoffset().total_seconds() == 0 for t in times)
    assert times[0] < times[1]


def test_the_suppressions_table_shows_the_latest_rows_and_says_how_many_there_are(
    siyu: Siyu, engine: Engine
) -> None:
    siyu("contacts", "suppress", "u000004", "--reason", "older")
    siyu("contacts", "suppress", "u000005", "--reason", "newer")

    table = siyu("contacts", "suppressions", "--limit", "1")
    empty_after = siyu("contacts", "unsuppress", "u000004", "u000005")

    assert table.code == 0
    assert "u000005" in table.stdout and "newer" in table.stdout
    assert "u000004" not in table.stdout
    assert "showing the latest 1 of 2" in table.stdout
    assert empty_after.stdout == "unsuppressed 2 contacts\n"


def test_a_suppressed_contact_is_skipped_with_its_reason_when_a_campaign_materialises(
    siyu: Siyu, db_url: str, redis_url: str, tmp_path: Path
) -> None:
    siyu("contacts", "suppress", "u000001")
    siyu("contacts", "suppress", "u000002", "--channel", "memory", "--reason", "complaint")
    ctx = make_context(db_url, redis_url, tmp_path)
    add_accounts(ctx.engine, ["a1"])
    add_campaign(ctx, "c1", ["a1"])
    run = start(ctx, "c1")
    assert run.id is not None

    materialise(ctx, run.id)

    query = select(CT.external_id, D.state, D.reason).join(tables.contacts, CT.id == D.contact_id)
    with ctx.engine.connect() as conn:
        rows = {r[0]: (r[1], r[2]) for r in conn.execute(query.where(CT.channel == "memory"))}
    ctx.engine.dispose()
    assert rows["u000001"] == ("skipped", "opted_out")
    assert rows["u000002"] == ("skipped", "complaint")
    assert {rows[f"u00000{i}"][0] for i in (3, 4, 5)} == {"pending"}
