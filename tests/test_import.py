"""Contacts CSV import: the contract's validation rules, all-or-nothing writes, upserts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from tests.support.cli import Siyu, one_error_line, siyu_on
from worker.audience import csvfile
from worker.audience.csvfile import Record, read_records
from worker.audience.importer import ImportReport, InvalidRows, RowError, import_contacts
from worker.audience.rows import ContactRow, Owners, read_contacts, split_tags
from worker.errors import UserError
from worker.store.models import Account, Contact

DATA = Path(__file__).parent / "data"
HAPPY = DATA / "contacts_bom_multiline.csv"
SOME_INVALID = DATA / "contacts_some_invalid.csv"
HEADER = "external_id,name,tags,owner,city\n"


@pytest.fixture
def owners(engine: Engine) -> dict[str, int]:
    """alice sends on `memory` (the channel imported into); bob on another channel."""
    with Session(engine) as session:
        accounts = [Account(name="alice", channel="memory"), Account(name="bob", channel="mock")]
        session.add_all(accounts)
        session.commit()
        return {account.name: int(account.id or 0) for account in accounts}


def stored(engine: Engine) -> dict[str, Contact]:
    with Session(engine) as session:
        return {c.external_id: c for c in session.exec(select(Contact).order_by(col(Contact.id)))}


def write(tmp_path: Path, text: str, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_bom_file_with_chinese_emoji_and_a_multiline_field_round_trips_exactly(
    engine: Engine, owners: dict[str, int]
) -> None:
    report = import_contacts(engine, HAPPY, "memory")

    assert report == ImportReport(rows=3, created=3, updated=0, rejected=[])
    contacts = stored(engine)
    assert list(contacts) == ["wx_001", "wx_002", "wx_003"]  # no BOM glued to the first name
    first, second, third = contacts.values()
    assert (first.name, first.tags, first.owner_id) == ("张三", ["python", "vip"], owners["alice"])
    assert first.attrs == {"city": "上海", "level": "2", "note": "第一行\r\nsecond line"}
    assert (second.name, second.tags, second.attrs) == (
        "Li 🎉",
        [],
        {"city": "北京", "note": "plain"},
    )
    assert (third.name, third.tags) == ("王五, Jr.", ["data", "🚀"])
    assert third.attrs == {"level": "3.0", "note": 'emoji 🚀 "quoted"'}
    assert {c.channel for c in contacts.values()} == {"memory"}


def test_rows_carry_the_physical_line_they_start_on_even_after_a_multiline_field() -> None:
    rows = list(read_contacts(HAPPY, Owners("memory", {"alice": 1}, {})))

    assert [row.line for row in rows if isinstance(row, ContactRow)] == [2, 4, 5]


def test_tags_are_trimmed_deduplicated_and_keep_their_order() -> None:
    assert split_tags(" b ; a;;b; ;c ") == ["b", "a", "c"]
    assert split_tags("") == []


EXPECTED_REJECTIONS = [
    RowError(5, "empty external_id"),
    RowError(6, "external_id 'a2' appears again (first on line 4)"),
    RowError(7, "unknown owner 'ghost' (no account has that name)"),
    RowError(8, "malformed row: expected 5 fields, found 2"),
    RowError(9, "owner 'bob' is an account of channel 'mock', not 'memory'"),
]


def test_one_bad_row_refuses_the_whole_file_and_every_bad_row_is_named(
    engine: Engine, owners: dict[str, int]
) -> None:
    import_contacts(engine, HAPPY, "memory")
    before = {k: (c.name, c.updated_at) for k, c in stored(engine).items()}

    with pytest.raises(InvalidRows) as caught:
        import_contacts(engine, SOME_INVALID, "memory")

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{SOME_INVALID}: 5 invalid row(s), nothing imported: ")
    assert "line 5: empty external_id; line 6: external_id 'a2' appears again" in message
    assert "and 2 more" in message
    assert caught.value.report.rejected == EXPECTED_REJECTIONS
    assert {k: (c.name, c.updated_at) for k, c in stored(engine).items()} == before


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ("a1,again,,,\n", "line 3: external_id 'a1' appears again (first on line 2)"),
        ("  ,no id,,,\n", "line 3: empty external_id"),
        ("a9,x,,ghost,\n", "line 3: unknown owner 'ghost'"),
        ("a9,x,,bob,\n", "line 3: owner 'bob' is an account of channel 'mock', not 'memory'"),
        ("a9,too,few\n", "line 3: malformed row: expected 5 fields, found 3"),
        ("a9,x,,,,extra\n", "line 3: malformed row: expected 5 fields, found 6"),
        ('a9,"x"y,,,\n', "line 3: malformed row: text follows a closing '\"'"),
        ('a9,"never closed,,,\n', "line 3: malformed row: a quoted field is never closed"),
    ],
)
def test_each_kind_of_bad_row_is_rejected_with_its_line_and_nothing_is_written(
    engine: Engine, owners: dict[str, int], tmp_path: Path, bad_row: str, reason: str
) -> None:
    path = write(tmp_path, HEADER + "a1,好,,alice,上海\n" + bad_row + "a2,ok,,,\n")

    with pytest.raises(InvalidRows, match="1 invalid row") as caught:
        import_contacts(engine, path, "memory")

    assert reason in str(caught.value)
    assert stored(engine) == {}


def test_skip_invalid_imports_the_good_rows_and_reports_every_bad_one(
    engine: Engine, owners: dict[str, int]
) -> None:
    report = import_contacts(engine, SOME_INVALID, "memory", skip_invalid=True)

    assert report == ImportReport(rows=8, created=3, updated=0, rejected=EXPECTED_REJECTIONS)
    contacts = stored(engine)
    assert list(contacts) == ["a1", "a2", "a6"]
    assert contacts["a1"].attrs == {"city": "spans\ntwo lines"}
    assert contacts["a2"].name == "乙"  # the first a2, not the rejected repeat
    assert contacts["a6"].owner_id == owners["alice"]


def test_a_dry_run_counts_creations_and_updates_but_writes_nothing(
    engine: Engine, owners: dict[str, int], tmp_path: Path
) -> None:
    import_contacts(engine, HAPPY, "memory")
    before = stored(engine)
    path = write(tmp_path, HEADER + "wx_001,renamed,,,\nnew_1,新,,,\nnew_2,新,,,\n")

    report = import_contacts(engine, path, "memory", dry_run=True)

    assert report == ImportReport(rows=3, created=2, updated=1, rejected=[])
    after = stored(engine)
    assert list(after) == list(before)
    assert after["wx_001"].name == "张三"


def test_reimporting_updates_contacts_in_place(
    engine: Engine, owners: dict[str, int], tmp_path: Path
) -> None:
    import_contacts(engine, HAPPY, "memory")
    first = stored(engine)["wx_001"]
    path = write(tmp_path, "external_id,name,tags,vip_level\nwx_001,张三丰,新标签,9\nwx_9,x,,\n")

    report = import_contacts(engine, path, "memory")

    assert (report.created, report.updated) == (1, 1)
    again = stored(engine)["wx_001"]
    assert again.id == first.id
    assert (again.name, again.tags, again.attrs) == ("张三丰", ["新标签"], {"vip_level": "9"})
    assert again.owner_id is None
    assert again.created_at == first.created_at
    assert again.updated_at > first.updated_at


def test_the_same_external_id_on_another_channel_is_another_contact(
    engine: Engine, owners: dict[str, int], tmp_path: Path
) -> None:
    path = write(tmp_path, "external_id,name\nu1,on memory\n")
    import_contacts(engine, path, "memory")
    import_contacts(engine, write(tmp_path, "external_id,name\nu1,on mock\n", "b.csv"), "mock")

    with Session(engine) as session:
        rows = session.exec(select(Contact.channel, Contact.name).order_by(col(Contact.id))).all()
    assert [tuple(row) for row in rows] == [("memory", "on memory"), ("mock", "on mock")]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "no header row"),
        (b"\xef\xbb\xbf", "no header row"),
        (b"\n\n  \n", "no header row"),
        (b"name,tags\nx,y\n", "the header has no 'external_id' column (found: name, tags)"),
        (b"external_id,name,name\n1,a,b\n", "column name 'name' appears twice (columns 2 and 3)"),
        (b"external_id,,city\n1,,x\n", "line 1: column 2 has no name"),
        (
            b"external_id,name\n1,ok\n2,\xff\xfe\n",
            "line 3 is not valid UTF-8 (cannot decode byte 0xff",
        ),
        ("external_id,name\n1,张三\n".encode("gbk"), "line 2 is not valid UTF-8"),
        (b'"external_id,name\n', "line 1: the header row is malformed"),
    ],
)
def test_whole_file_problems_are_one_line_errors_naming_the_file(
    sqlite_engine: Engine, tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)

    with pytest.raises(UserError) as caught:
        import_contacts(sqlite_engine, path, "memory", skip_invalid=True)

    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message
    assert stored(sqlite_engine) == {}


def test_a_missing_file_is_a_user_error(sqlite_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.csv: no such file"):
        import_contacts(sqlite_engine, tmp_path / "nope.csv", "memory")


def test_an_unknown_channel_is_refused_with_the_known_ones(
    sqlite_engine: Engine,
) -> None:
    with pytest.raises(UserError, match=r"unknown channel 'fax'; known channels: .*memory"):
        import_contacts(sqlite_engine, HAPPY, "fax")


def test_a_hundred_thousand_rows_import_in_one_go(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("external_id,name,tags,city,level\n")
        for i in range(100_000):
            out.write(f"u{i},用户{i},python;vip{i % 7},上海,{i % 5}\n")

    report = import_contacts(engine, path, "memory")

    assert (report.rows, report.created, report.rejected) == (100_000, 100_000, [])
    with Session(engine) as session:
        last = session.exec(select(Contact).where(Contact.external_id == "u99999")).one()
    assert (last.name, last.tags, last.attrs) == (
        "用户99999",
        ["python", "vip4"],  # 99999 % 7 == 4
        {"city": "上海", "level": "4"},
    )


# Files from Excel: other encodings through the real `siyu contacts import`.

GBK_ROWS = 'external_id,name,tags,city\nu1,张三,python;学员,上海\nu2,"李四, 北京",,上海\n'
EXCEL_ADVICE = 'save it from Excel as "CSV UTF-8 (Comma delimited)"'


@pytest.fixture
def siyu(
    db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Siyu]:
    """`siyu(*args)` runs the console script in-process against the test database."""
    with siyu_on(db_url, monkeypatch, capsys) as run:
        yield run


def encoded(tmp_path: Path, text: str, codec: str, name: str = "excel.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(codec))
    return path


@pytest.mark.parametrize(
    ("option", "text"),
    [
        ("gbk", GBK_ROWS),
        ("GB18030", GBK_ROWS + "u3,吉𠮷,,上海\n"),  # 𠮷 is four bytes, beyond GBK
        ("gb18030", GBK_ROWS.replace("\n", "\r\n")),  # Excel's line ends, GBK bytes
    ],
)
def test_a_gbk_or_gb18030_file_imports_with_its_encoding_and_stores_the_right_text(
    siyu: Siyu, engine: Engine, tmp_path: Path, option: str, text: str
) -> None:
    path = encoded(tmp_path, text, "gb18030")

    outcome = siyu("contacts", "import", str(path), "--channel", "memory", "--encoding", option)

    assert outcome.code == 0, outcome
    contacts = stored(engine)
    assert (contacts["u1"].name, contacts["u1"].tags) == ("张三", ["python", "学员"])
    assert contacts["u2"].name == "李四, 北京"
    assert {c.attrs["city"] for c in contacts.values()} == {"上海"}
    if "𠮷" in text:
        assert contacts["u3"].name == "吉𠮷"


@pytest.mark.parametrize("extra", [(), ("--skip-invalid",), ("--dry-run",)])
def test_a_gb18030_file_without_encoding_is_refused_with_the_fix_and_nothing_is_written(
    siyu: Siyu, engine: Engine, tmp_path: Path, extra: tuple[str, ...]
) -> None:
    path = encoded(tmp_path, GBK_ROWS + "u3,吉𠮷,,上海\n", "gb18030")

    error = one_error_line(siyu("contacts", "import", str(path), "--channel", "memory", *extra))

    assert error.startswith(f"error: {path}: line 2 is not valid UTF-8 (cannot decode byte 0xd5")
    assert "after 'u1,')" in error
    assert "import it with --encoding gb18030" in error
    assert EXCEL_ADVICE in error
    assert stored(engine) == {}


def test_a_wrong_encoding_is_refused_with_the_line_and_a_hint(
    siyu: Siyu, engine: Engine, tmp_path: Path
) -> None:
    path = encoded(tmp_path, GBK_ROWS + "u3,吉𠮷,,上海\n", "gb18030")

    error = one_error_line(siyu("contacts", "import", str(path), "--encoding", "gbk"))

    assert error.startswith(f"error: {path}: line 4 is not valid gbk (cannot decode byte 0x95 ")
    assert "after 'u3,吉')" in error
    assert "check --encoding (gbk was given; gb18030 covers GBK and GB2312)" in error
    assert stored(engine) == {}


@pytest.mark.parametrize("name", ["gbkk", "base64", "rot13"])
def test_an_unknown_or_non_text_codec_is_refused_listing_common_ones(
    siyu: Siyu, engine: Engine, tmp_path: Path, name: str
) -> None:
    path = write(tmp_path, "external_id\nu1\n")

    error = one_error_line(siyu("contacts", "import", str(path), "--encoding", name))

    assert error.startswith(f"error: --encoding: {name!r} is not a known text encoding; ")
    assert "common ones: utf-8, gb18030 (reads GBK and GB2312 too), big5" in error
    assert stored(engine) == {}


@pytest.mark.parametrize("option", [(), ("--encoding", "utf-8"), ("--encoding", "utf-8-sig")])
def test_a_utf8_file_with_a_bom_imports_with_or_without_encoding_utf8(
    siyu: Siyu, engine: Engine, owners: dict[str, int], option: tuple[str, ...]
) -> None:
    outcome = siyu("contacts", "import", str(HAPPY), "--channel", "memory", *option)

    assert outcome.code == 0, outcome
    assert list(stored(engine)) == ["wx_001", "wx_002", "wx_003"]
    assert stored(engine)["wx_001"].attrs["city"] == "上海"


def test_an_excel_utf8_file_imported_as_gb18030_is_refused_rather_than_garbled(
    siyu: Siyu, engine: Engine
) -> None:
    error = one_error_line(siyu("contacts", "import", str(HAPPY), "--encoding", "gb18030"))

    assert error == (
        f'error: {HAPPY}: the file starts with a UTF-8 byte-order mark (Excel\'s "CSV UTF-8"), '
        "but the encoding given is gb18030; import it without --encoding"
    )
    assert stored(engine) == {}


def test_a_utf16_file_with_a_bom_imports_with_encoding_utf16(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    path = encoded(tmp_path, "external_id,name,city\nu1,张三,上海\nu2,上上,x\n", "utf-16")

    report = import_contacts(sqlite_engine, path, "memory", encoding="utf-16")

    assert report.created == 2
    assert [(c.name, c.attrs["city"]) for c in stored(sqlite_engine).values()] == [
        ("张三", "上海"),
        ("上上", "x"),  # 上 is 0x0a 0x4e in UTF-16-LE: a newline byte inside a character
    ]


def big_gb18030_file(tmp_path: Path, rows: int, bad_line: int | None = None) -> Path:
    """A BOM-less GB18030 file; line 2 holds a 3-line quoted field, so lines != records."""
    path = tmp_path / "big.csv"
    with path.open("wb") as out:
        out.write("external_id,name,city\n".encode("gb18030"))
        out.write('u0,"第一行\n第二行\n第三行",上海\n'.encode("gb18030"))
        line = 5
        for i in range(1, rows):
            row = f"u{i},用户{i},上海\n".encode("gb18030")
            if line == bad_line:
                row = row.replace(b",", b",\xff", 1)  # never valid in GB18030
            out.write(row)
            line += 1
    return path


def test_a_bad_byte_on_line_5000_of_a_large_file_names_line_5000_and_nothing_is_written(
    engine: Engine, tmp_path: Path
) -> None:
    path = big_gb18030_file(tmp_path, 20_000, bad_line=5000)

    with pytest.raises(UserError) as caught:
        import_contacts(engine, path, "memory", encoding="gb18030", skip_invalid=True)

    assert str(caught.value).startswith(
        f"{path}: line 5000 is not valid gb18030 (cannot decode byte 0xff after 'u4996,')"
    )
    assert stored(engine) == {}  # four chunks of 1000 rows were upserted, then rolled back


def test_row_errors_keep_their_physical_lines_in_a_large_gb18030_file(
    engine: Engine, tmp_path: Path
) -> None:
    path = big_gb18030_file(tmp_path, 20_000)
    with path.open("ab") as out:  # line 20004: u1..u19999 are on lines 5..20003
        out.write("u7,重复,上海\n".encode("gb18030"))

    report = import_contacts(engine, path, "memory", encoding="gb18030", skip_invalid=True)

    assert report.rejected == [RowError(20004, "external_id 'u7' appears again (first on line 11)")]
    assert (report.rows, report.created) == (20_001, 20_000)
    assert stored(engine)["u0"].name == "第一行\n第二行\n第三行"
    assert stored(engine)["u19999"].name == "用户19999"


SMALL = '\ufeffexternal_id,name\nu1,"张\r\n三"\r\nu2,吉𠮷\r\n\r\nu3,"李,四"\r\n'


@pytest.mark.parametrize("codec", ["utf-8", "gb18030", "utf-16-le"])
@pytest.mark.parametrize("block_bytes", [1, 2, 3, 5, 64 * 1024])
def test_records_and_their_lines_do_not_depend_on_where_the_blocks_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str, block_bytes: int
) -> None:
    monkeypatch.setattr(csvfile, "BLOCK_BYTES", block_bytes)
    path = encoded(tmp_path, SMALL, codec)  # each codec's own byte-order mark

    records = list(read_records(path, None if codec == "utf-8" else codec))

    assert records == [
        Record(1, ["external_id", "name"]),
        Record(2, ["u1", "张\r\n三"]),
        Record(4, ["u2", "吉𠮷"]),
        Record(6, ["u3", "李,四"]),
    ]


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 64 * 1024])
@pytest.mark.parametrize(
    ("codec", "bad", "shown"),
    [("utf-8", b"\xe4\xb8", "bytes 0xe4 0xb8"), ("gb18030", b"\x81", "byte 0x81")],
)
def test_an_undecodable_byte_names_its_line_wherever_the_blocks_split(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    block_bytes: int,
    codec: str,
    bad: bytes,
    shown: str,
) -> None:
    monkeypatch.setattr(csvfile, "BLOCK_BYTES", block_bytes)
    path = tmp_path / "bad.csv"
    path.write_bytes('external_id,name\nu1,"张\n三"\nu2,李'.encode(codec) + bad + b"\nu3,x\n")

    with pytest.raises(UserError) as caught:
        list(read_records(path, codec))

    label = "UTF-8" if codec == "utf-8" else codec
    assert str(caught.value).startswith(
        f"{path}: line 4 is not valid {label} (cannot decode {shown} after 'u2,李')"
    )


def test_a_file_cut_inside_a_character_names_its_last_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_bytes("external_id,name\nu1,张".encode("gb18030") + b"\x81")

    with pytest.raises(UserError, match=r"line 2 is not valid gb18030 \(cannot decode byte 0x81"):
        list(read_records(path, "gb18030"))


def test_a_bad_byte_in_the_block_after_a_split_character_names_its_own_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvfile, "BLOCK_BYTES", 4)
    path = tmp_path / "split.csv"
    path.write_bytes(b"x,y\xe5" + b"\xbc\xa0\n\xff" + b"\n")  # blocks: 4 bytes, 4 bytes, 1 byte

    with pytest.raises(UserError) as caught:
        list(read_records(path))

    assert "line 2 is not valid UTF-8 (cannot decode byte 0xff at the start of the line)" in str(
        caught.value
    )
