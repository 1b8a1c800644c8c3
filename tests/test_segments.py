"""Segment expressions: the parser, and identical members on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from worker.audience.segment_parser import And, Condition, Not, Or
from worker.audience.segments import (
    SegmentSyntaxError,
    compile_segment,
    parse_segment,
    segment_member_count,
)
from worker.errors import NotFound, UserError
from worker.services.segments import add_segment, get_segment, list_segments, show_segment
from worker.store.models import Account, Contact

# --- parser ---------------------------------------------------------------------------------


def cond(name: str, op: str, *values: str) -> Condition:
    return Condition(name, op, values)


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    assert parse_segment("a = 1 or b = 2 and not c = 3") == Or(
        (cond("a", "=", "1"), And((cond("b", "=", "2"), Not(cond("c", "=", "3")))))
    )


def test_parentheses_override_precedence_and_chains_stay_flat() -> None:
    assert parse_segment("(a = 1 or b = 2) and c = 3 and d = 4") == And(
        (Or((cond("a", "=", "1"), cond("b", "=", "2"))), cond("c", "=", "3"), cond("d", "=", "4"))
    )
    assert parse_segment("not not (tag = x)") == Not(Not(cond("tag", "=", "x")))


def test_keywords_are_case_insensitive_but_only_as_whole_words() -> None:
    assert parse_segment("NOT tag = x AnD order = 1 Or notes Not In (a) or index IN (b)") == Or(
        (
            And((Not(cond("tag", "=", "x")), cond("order", "=", "1"))),
            cond("notes", "not in", "a"),
            cond("index", "in", "b"),
        )
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("level>=2", cond("level", ">=", "2")),
        ("level == 2", cond("level", "=", "2")),
        ("city = 上海", cond("city", "=", "上海")),
        ("城市 != 北京🎉", cond("城市", "!=", "北京🎉")),
        ("signup_date < 2026-10-01", cond("signup_date", "<", "2026-10-01")),
        ("url = a=b&c", cond("url", "=", "a=b&c")),
        ("name = 'Li Lei'", cond("name", "=", "Li Lei")),
        ('name = "say \\"hi\\""', cond("name", "=", 'say "hi"')),
        ("note = 'it\\'s \\\\ ok'", cond("note", "=", "it's \\ ok")),
        ("x = 'and'", cond("x", "=", "and")),
        ("x = ''", cond("x", "=", "")),
        ("level in (1, '2', \"a b\")", cond("level", "in", "1", "2", "a b")),
        ("tag not in(vip,refunded)", cond("tag", "not in", "vip", "refunded")),
    ],
)
def test_values_may_be_bare_or_quoted(expression: str, expected: Condition) -> None:
    assert parse_segment(expression) == expected


@pytest.mark.parametrize(
    ("expression", "column", "problem"),
    [
        ("level >= ", 10, "expected a value after '>='"),
        ("", 1, "expected a condition such as 'tag = vip'"),
        ("tag = a and", 12, "expected a condition"),
        ("city 上海", 6, "expected an operator (=, !=, <, <=, >, >=, in, not in) after 'city'"),
        ("(tag = a or tag = b", 20, "expected ')' to close the '(' at column 1"),
        ("tag = a)", 8, "found ')' without a matching '('"),
        ("tag = a b = 2", 9, "expected 'and', 'or' or the end of the expression"),
        ("x = 'open", 5, "expected a closing ' for the value opened here"),
        ("x in 1, 2", 6, "expected '(' after 'in'"),
        ("x in (1 2)", 9, "expected ',' or ')' in the list opened at column 6"),
        ("x in ()", 7, "expected a value in the list"),
        ("x not = 1", 7, "expected 'in' after 'not'"),
        ("x = or", 5, "expected a value after '=' (quote 'or' to use it as a value)"),
        ("tag >= a", 5, "expected =, !=, in or not in after 'tag'"),
        ("x == ", 6, "expected a value after '='"),
    ],
)
def test_syntax_errors_name_the_column_and_what_was_expected(
    expression: str, column: int, problem: str
) -> None:
    with pytest.raises(SegmentSyntaxError) as caught:
        parse_segment(expression)

    assert caught.value.column == column
    assert str(caught.value).startswith(f"segment expression: column {column}: {problem}")
    assert str(caught.value).endswith(f" in: {expression}")
    assert isinstance(caught.value, UserError)


def test_the_documented_error_message_is_exact() -> None:
    with pytest.raises(SegmentSyntaxError) as caught:
        compile_segment("level >= ")
    assert (
        str(caught.value)
        == "segment expression: column 10: expected a value after '>=' in: level >= "
    )


def test_a_multi_line_expression_is_reported_on_one_line() -> None:
    with pytest.raises(SegmentSyntaxError) as caught:
        parse_segment("tag = a\nand")
    assert "\n" not in str(caught.value)
    assert "column 12" in str(caught.value)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.psycopg.dialect()])
def test_values_only_ever_reach_sql_as_bound_parameters(dialect: object) -> None:
    hostile = "x'); DROP TABLE contacts; --"
    expression = f'city = "{hostile}" or tag = "{hostile}" or level >= "{hostile}" or owner = 1'
    compiled = select(Contact.id).where(compile_segment(expression)).compile(dialect=dialect)  # type: ignore[arg-type]

    assert "DROP" not in str(compiled)
    assert list(compiled.params.values()).count(hostile) == 3


def test_text_ordering_on_postgresql_ignores_the_database_locale() -> None:
    compiled = compile_segment("city < 北京").compile(dialect=postgresql.psycopg.dialect())

    assert 'COLLATE "C"' in str(compiled)


# --- semantics on both databases ------------------------------------------------------------

PEOPLE = {
    # external_id: (channel, tags, attrs, owner)
    "c1": (
        "memory",
        ["python", "vip"],
        {"city": "上海", "level": "2", "signup": "2026-10-05"},
        "alice",
    ),
    "c2": (
        "memory",
        ["python", "refunded"],
        {"city": "北京", "level": "2.0", "signup": "2026-09-30"},
        "bob",
    ),
    "c3": ("memory", ["data"], {"city": "上海", "level": "10", "signup": "2026-10-01"}, None),
    "c4": ("memory", [], {"city": "上海 浦东", "level": "high"}, "alice"),
    "c5": ("mock", ["vip"], {}, None),
    "007": ("memory", ["a b"], {"level": "-1", "note": "it's"}, None),
}
NAMES = {"c1": "张三", "c2": "李四", "c3": "Wang", "c4": "Emoji 🎉", "c5": "x", "007": "零零七"}

SEMANTICS = [
    ("tag = python", {"c1", "c2"}),
    ("tag != refunded", {"c1", "c3", "c4", "c5", "007"}),
    ("tag in (data, 'a b')", {"c3", "007"}),
    ("tag not in (python, vip)", {"c3", "c4", "007"}),
    ("city = 上海", {"c1", "c3"}),
    ("city != 上海", {"c2", "c4", "c5", "007"}),  # a missing attribute is "not 上海"
    ("city = '上海 浦东'", {"c4"}),
    ("city < 北京", {"c1", "c3", "c4"}),  # code-point order on both databases
    ("name < a", {"c3", "c4"}),  # upper case sorts first, whatever the database's locale
    ("level >= 2", {"c1", "c2", "c3"}),  # numeric: 10 >= 2, 'high' never matches
    ("not level >= 2", {"c4", "c5", "007"}),  # the exact complement
    ("level = 2", {"c1", "c2"}),  # 2.0 equals 2
    ("level < 0", {"007"}),
    ("level >= high", {"c4"}),  # a non-numeric value compares as text
    ("level in (1, 2)", {"c1", "c2"}),
    ("level not in (1, 2)", {"c3", "c4", "c5", "007"}),
    ("signup >= 2026-10-01", {"c1", "c3"}),
    ("signup < 2026-10-01", {"c2"}),
    ("missing = x or missing >= 1", set()),
    ("missing != x", set(PEOPLE)),
    ("owner = alice", {"c1", "c4"}),
    ("owner != alice", {"c2", "c3", "c5", "007"}),
    ("name = 'Emoji 🎉' or name = 张三", {"c1", "c4"}),
    ("external_id = 7", {"007"}),  # numeric equality: '007' is 7
    ("channel = mock", {"c5"}),
    ("note = 'it\\'s'", {"007"}),
    ("tag = vip and not city = 上海 or tag = data", {"c3", "c5"}),
    ("tag = vip and (not city = 上海 or tag = data)", {"c5"}),
    ("NOT tag = python AND level > 0", {"c3"}),
]


@pytest.fixture
def people(engine: Engine) -> Iterator[Engine]:
    with Session(engine) as session:
        owners = {n: Account(name=n, channel="memory") for n in ("alice", "bob")}
        session.add_all(owners.values())
        session.flush()
        for external_id, (channel, tags, attrs, owner) in PEOPLE.items():
            owner_id = owners[owner].id if owner else None
            session.add(
                Contact(
                    channel=channel,
                    external_id=external_id,
                    name=NAMES[external_id],
                    tags=tags,
                    attrs=attrs,
                    owner_id=owner_id,
                )
            )
        session.commit()
    yield engine


@pytest.mark.parametrize(("expression", "members"), SEMANTICS, ids=[e for e, _ in SEMANTICS])
def test_an_expression_selects_the_same_members_on_sqlite_and_postgresql(
    people: Engine, expression: str, members: set[str]
) -> None:
    query = select(Contact.external_id).where(compile_segment(expression))
    with Session(people) as session:
        found = set(session.exec(query))

    assert found == members
    assert segment_member_count(people, expression) == len(members)


def test_a_non_numeric_attribute_never_breaks_a_numeric_comparison(people: Engine) -> None:
    # PostgreSQL would raise on CAST('high' AS NUMERIC) if the cast were not guarded.
    assert segment_member_count(people, "level > 1.5 or level <= -0.5") == 4


# --- the segments service -------------------------------------------------------------------


def test_a_segment_is_stored_shown_and_listed_with_its_member_count(people: Engine) -> None:
    add_segment(people, "pythonistas", "tag = python")
    add_segment(people, "shanghai", "  city = 上海  ")

    assert show_segment(people, "shanghai") == {
        "name": "shanghai",
        "where": "city = 上海",
        "members": 2,
    }
    assert [(s["name"], s["members"]) for s in list_segments(people)] == [
        ("pythonistas", 2),
        ("shanghai", 2),
    ]
    with Session(people) as session:
        assert get_segment(session, "pythonistas").expression == "tag = python"


def test_a_segment_with_a_bad_expression_or_a_taken_name_is_not_stored(
    sqlite_engine: Engine,
) -> None:
    # No contacts: every tag is unknown now, so these need allow_unknown (test_cli_segments).
    add_segment(sqlite_engine, "vip", "tag = vip", allow_unknown=True)

    with pytest.raises(SegmentSyntaxError, match="column 7"):
        add_segment(sqlite_engine, "broken", "tag = (", allow_unknown=True)
    with pytest.raises(UserError, match="segment 'vip' already exists"):
        add_segment(sqlite_engine, "vip", "tag = other", allow_unknown=True)
    with pytest.raises(UserError, match="non-empty name"):
        add_segment(sqlite_engine, "  ", "tag = other", allow_unknown=True)

    assert [s["name"] for s in list_segments(sqlite_engine)] == ["vip"]
    assert show_segment(sqlite_engine, "vip")["where"] == "tag = vip"


def test_an_unknown_segment_names_a_few_that_exist(sqlite_engine: Engine) -> None:
    with pytest.raises(NotFound, match="there are no segments yet"):
        get_segment(sqlite_engine, "nope")
    for i in range(12):
        add_segment(sqlite_engine, f"s{i:02d}", "tag = x", allow_unknown=True)

    with pytest.raises(NotFound) as caught:
        show_segment(sqlite_engine, "nope")

    message = str(caught.value)
    assert message.startswith("segment 'nope' not found; known segments: s00, s01,")
    assert "s09, ..." in message
    assert "s10" not in message
