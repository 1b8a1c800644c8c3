"""Message templates: rendering, error reporting with file and line, sandbox, tracking links."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from worker.render import (
    MessageRenderer,
    RecipientView,
    TemplateError,
    check_length,
    list_templates,
    recipient_token,
    render_file,
    validate_template,
)

SHIPPED = Path(__file__).resolve().parent.parent / "templates"
SECRET = "test-secret"
COURSE_VARS = {
    "course_name": "Python 数据分析入门",
    "course_url": "https://edu.example.com/c/py-data?from=wechat#outline",
    "group_url": "https://work.weixin.qq.com/gm/3f9a2c1d",
}
ZHANG = RecipientView(
    contact_id=987654,
    external_id="wx_zhang_987654",
    name="张伟",
    tags=("python", "vip"),
    attrs={"city": "上海", "level": "2"},
)
WANG = RecipientView(contact_id=11, external_id="wx_wang_11", name="王芳", tags=(), attrs={})

Make = Callable[..., MessageRenderer]


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    root = tmp_path / "templates"
    root.mkdir()
    return root


@pytest.fixture
def make(templates: Path) -> Make:
    """Write `source` as templates/<name>.j2 and build its renderer."""

    def build(
        source: str, variables: dict[str, str] | None = None, *, name: str = "msg", **kw: str
    ) -> MessageRenderer:
        (templates / f"{name}.j2").write_text(source, encoding="utf-8")
        options = {"campaign": "oct", "channel": "mock", "tracking_secret": SECRET, **kw}
        return MessageRenderer(templates, name, variables or {}, **options)

    return build


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def raised(action: Callable[[], object]) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        action()
    message = str(info.value)
    assert "\n" not in message, "a TemplateError is one line"
    return info.value


# Rendering


def test_a_message_renders_contact_fields_attributes_and_variables(make: Make) -> None:
    source = (
        "{{ contact.name }}/{{ contact.external_id }}/{{ contact.tags | join(',') }}\n"
        "{{ contact.attrs.city }}={{ contact.attrs['city'] }} L{{ contact.attrs.level }}\n"
        "{{ course }}"
    )
    text = make(source, {"course": "SQL 入门"}).render(ZHANG)
    assert text == "张伟/wx_zhang_987654/python,vip\n上海=上海 L2\nSQL 入门"


def test_chinese_text_and_emoji_pass_through_unchanged(make: Make) -> None:
    source = "{{ contact.name }}同学，早上好☀️🎉 《{{ course }}》开课啦👩‍💻"
    text = make(source, {"course": "数据分析"}).render(ZHANG)
    assert text == "张伟同学，早上好☀️🎉 《数据分析》开课啦👩‍💻"


def test_the_trailing_newline_is_stripped_and_inner_whitespace_kept(make: Make) -> None:
    text = make("  a  \n\n  b\t\n\n").render(ZHANG)
    assert text == "  a  \n\n  b\t"


def test_a_block_tag_on_its_own_line_leaves_no_blank_line(make: Make) -> None:
    source = (
        "{# needs nothing #}\n"
        "hello\n"
        "  {% if contact.attrs.get('city') %}\n"
        "city {{ contact.attrs.city }}\n"
        "  {% endif %}\n"
        "bye\n"
    )
    renderer = make(source)
    assert renderer.render(ZHANG) == "hello\ncity 上海\nbye"
    assert renderer.render(WANG) == "hello\nbye"


def test_a_missing_optional_attribute_renders_as_empty_not_none(make: Make) -> None:
    assert make("[{{ contact.attrs.get('city') }}]").render(WANG) == "[]"


def test_templates_cannot_see_the_internal_contact_id(make: Make) -> None:
    error = raised(lambda: make("{{ contact.contact_id }}").render(ZHANG))
    assert error.kind == "undefined"
    assert str(error) == "templates/msg.j2 line 1: contact has no attribute 'contact_id'"
    text = make("{{ contact }}").render(ZHANG)
    assert "987654" not in text.replace("wx_zhang_987654", "")


def test_an_edited_template_is_picked_up_by_the_next_renderer(make: Make, templates: Path) -> None:
    assert make("one").render(ZHANG) == "one"
    path = templates / "msg.j2"
    path.write_text("two", encoding="utf-8")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))  # coarse mtimes: make the edit visible
    again = MessageRenderer(templates, "msg", {}, campaign="c", channel="m", tracking_secret="s")
    assert again.render(ZHANG) == "two"


def test_a_campaign_variable_may_not_shadow_contact_or_track(make: Make) -> None:
    error = raised(lambda: make("x", {"contact": "a", "track": "b"}))
    assert error.kind == "variables"
    assert str(error).startswith("templates/msg.j2: 'contact', 'track': reserved")


# Errors name the file and the template line


def test_an_undefined_variable_names_the_file_and_line(make: Make) -> None:
    renderer = make("hi {{ contact.name }}\n\nlink {{ course_url }}\n", {"course": "x"})
    error = raised(lambda: renderer.render(ZHANG))
    assert str(error) == "templates/msg.j2 line 3: 'course_url' is undefined"
    assert (error.kind, error.path, error.lineno) == ("undefined", "templates/msg.j2", 3)


def test_an_undefined_variable_passed_to_track_names_the_variable(make: Make) -> None:
    error = raised(lambda: make("a\n{{ track(course_url) }}").render(ZHANG))
    assert str(error) == "templates/msg.j2 line 2: 'course_url' is undefined"


def test_a_missing_contact_attribute_names_the_file_and_line(make: Make) -> None:
    error = raised(lambda: make("a\nb\n{{ contact.attrs.town }}").render(ZHANG))
    assert str(error) == "templates/msg.j2 line 3: 'dict object' has no attribute 'town'"


def test_a_syntax_error_fails_construction_with_file_and_line(make: Make) -> None:
    error = raised(lambda: make("hello\n{{ name }\n"))
    assert str(error) == "templates/msg.j2 line 2: unexpected '}'"
    assert error.kind == "syntax"


def test_an_unclosed_block_is_reported_at_construction(make: Make) -> None:
    error = raised(lambda: make("a\n{% if x %}\nb\n"))
    assert error.kind == "syntax"
    assert str(error).startswith("templates/msg.j2 line 3: Unexpected end of template.")


def test_an_unknown_filter_is_reported_with_its_line(make: Make) -> None:
    error = raised(lambda: make("a\n\n{{ contact.name | shout }}"))
    assert str(error) == "templates/msg.j2 line 3: No filter named 'shout'."


def test_an_unknown_filter_inside_a_condition_is_reported_when_rendered(make: Make) -> None:
    renderer = make("a\n{% if contact.tags %}\n{{ contact.name | shout }}\n{% endif %}")
    assert renderer.render(WANG) == "a"
    error = raised(lambda: renderer.render(ZHANG))
    assert (error.path, error.lineno) == ("templates/msg.j2", 3)
    assert "No filter named 'shout'" in error.detail


def test_a_runtime_error_is_reported_with_its_template_line(make: Make) -> None:
    renderer = make("a\nb\n{{ 100 // (contact.tags | length) }}")
    assert renderer.render(ZHANG) == "a\nb\n50"
    error = raised(lambda: renderer.render(WANG))
    assert (
        str(error)
        == "templates/msg.j2 line 3: ZeroDivisionError: integer division or modulo by zero"
    )
    assert error.kind == "runtime"


def test_an_error_in_an_included_template_names_that_file_and_the_include(
    make: Make, templates: Path
) -> None:
    (templates / "footer.j2").write_text("ok\n{{ 1 / 0 }}\n", encoding="utf-8")
    error = raised(lambda: make('hello\n\n{% include "footer.j2" %}').render(ZHANG))
    assert str(error) == (
        "templates/footer.j2 line 2: ZeroDivisionError: division by zero "
        "(included from templates/msg.j2 line 3)"
    )


def test_a_missing_template_says_where_it_was_expected_and_lists_the_others(
    make: Make, templates: Path
) -> None:
    make("x", name="welcome")
    make("y", name="course_invite")
    error = raised(
        lambda: MessageRenderer(
            templates, "foo", {}, campaign="c", channel="m", tracking_secret="s"
        )
    )
    assert str(error) == (
        "template 'foo' not found: expected templates/foo.j2 (available: course_invite, welcome)"
    )


def test_a_missing_templates_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "templates"
    error = raised(
        lambda: MessageRenderer(missing, "foo", {}, campaign="c", channel="m", tracking_secret="s")
    )
    assert f"the templates directory {missing} does not exist" in str(error)


def test_a_template_name_may_be_given_with_its_suffix(make: Make, templates: Path) -> None:
    make("hi", name="welcome")
    renderer = MessageRenderer(
        templates, "welcome.j2", {}, campaign="c", channel="m", tracking_secret="s"
    )
    assert (renderer.render(ZHANG), renderer.display_path) == ("hi", "templates/welcome.j2")


def test_a_byte_order_mark_an_editor_saved_is_not_part_of_the_message(templates: Path) -> None:
    # Windows Notepad starts UTF-8 files with one; a `Subject:` line must still come first.
    (templates / "bom.j2").write_bytes("\ufeffSubject: 开课啦\n{{ contact.name }}同学".encode())
    renderer = MessageRenderer(templates, "bom", {}, campaign="c", channel="m", tracking_secret="s")
    assert renderer.render(ZHANG) == "Subject: 开课啦\n张伟同学"


def test_a_template_that_is_not_utf8_is_named(templates: Path) -> None:
    (templates / "gbk.j2").write_bytes("你好".encode("gbk"))
    error = raised(
        lambda: MessageRenderer(
            templates, "gbk", {}, campaign="c", channel="m", tracking_secret="s"
        )
    )
    assert str(error).startswith("templates/gbk.j2: not valid UTF-8")


# The sandbox


@pytest.mark.parametrize(
    "expression",
    [
        "contact.__class__",
        "contact.__class__.__init__.__globals__",
        "().__class__.__base__.__subclasses__()",
        "''.__class__.__mro__",
        "track.__globals__",
        "'{0.__class__}'.format(contact)",
        "contact.attrs.update({'city': 'x'})",
        "contact.attrs.clear()",
    ],
)
def test_the_sandbox_blocks_internals_and_mutation(make: Make, expression: str) -> None:
    renderer = make("line one\n{{ " + expression + " }}")
    for _ in range(2):  # the second time exercises the memoised verdict
        error = raised(lambda: renderer.render(ZHANG))
        assert error.kind == "sandbox"
        assert (error.path, error.lineno) == ("templates/msg.j2", 2)
        assert str(error).startswith("templates/msg.j2 line 2: blocked by the sandbox: ")
    assert ZHANG.attrs == {"city": "上海", "level": "2"}


def test_the_sandbox_still_allows_ordinary_methods(make: Make) -> None:
    source = (
        "{{ contact.name.upper() }} {{ contact.attrs.get('x', '-') }} {{ 'vip' in contact.tags }}"
    )
    assert make(source).render(ZHANG) == "张伟 - True"


def test_a_huge_range_is_refused_rather_than_exhausting_memory(make: Make) -> None:
    error = raised(lambda: make("{{ range(10**9) | list | length }}").render(ZHANG))
    assert error.kind == "runtime" and error.lineno == 1


# track()


def test_track_adds_all_four_parameters(make: Make) -> None:
    url = make("{{ track(u) }}", {"u": "https://e.com/c"}, campaign="秋季班").render(ZHANG)
    params = query(url)
    assert url.startswith("https://e.com/c?")
    assert params == {
        "utm_source": ["siyu"],
        "utm_medium": ["mock"],
        "utm_campaign": ["秋季班"],
        "rt": [recipient_token(SECRET, "秋季班", ZHANG.contact_id)],
    }
    assert re.fullmatch(r"[0-9a-f]{16}", params["rt"][0])


def test_track_keeps_the_existing_query_and_fragment(make: Make) -> None:
    url = make("{{ track(u) }}", {"u": "https://e.com/c?a=1&b=%E4%BD%A0&e=#part-2"}).render(ZHANG)
    assert url.startswith("https://e.com/c?a=1&b=%E4%BD%A0&e=&utm_source=siyu&")
    assert url.endswith("#part-2")
    keys = [k for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)]
    assert keys == ["a", "b", "e", "utm_source", "utm_medium", "utm_campaign", "rt"]


def test_track_keeps_a_parameter_the_author_set(make: Make) -> None:
    url = make("{{ track(u) }}", {"u": "https://e.com/?utm_source=poster&x=1"}).render(ZHANG)
    params = query(url)
    assert params["utm_source"] == ["poster"]
    assert set(params) == {"utm_source", "x", "utm_medium", "utm_campaign", "rt"}


def test_track_handles_a_url_ending_in_a_question_mark(make: Make) -> None:
    url = make("{{ track(u) }}", {"u": "http://e.com/p?"}).render(ZHANG)
    assert url.startswith("http://e.com/p?utm_source=siyu&utm_medium=mock")


@pytest.mark.parametrize(
    "bad", ["ftp://e.com/file", "javascript:alert(1)", "e.com/path", "https:///nohost", ""]
)
def test_track_rejects_anything_but_an_http_url_with_file_and_line(make: Make, bad: str) -> None:
    error = raised(lambda: make("a\n{{ track(u) }}", {"u": bad}).render(ZHANG))
    assert error.kind == "url"
    assert str(error).startswith("templates/msg.j2 line 2: track() needs an http(s) URL")


def test_track_rejects_a_value_that_is_not_a_string(make: Make) -> None:
    error = raised(lambda: make("{{ track(42) }}").render(ZHANG))
    assert str(error) == "templates/msg.j2 line 1: track() needs a URL string, got int"


def test_the_recipient_token_is_stable_per_campaign_and_contact(make: Make) -> None:
    renderer = make("{{ track('https://e.com/') }}")
    first = query(renderer.render(ZHANG))["rt"]
    again = query(make("{{ track('https://e.com/') }}").render(ZHANG))["rt"]
    assert first == again == [recipient_token(SECRET, "oct", ZHANG.contact_id)]
    assert renderer.token(ZHANG.contact_id) == first[0]


def test_the_recipient_token_differs_across_contacts_campaigns_and_secrets() -> None:
    tokens = {
        recipient_token(SECRET, "oct", 1),
        recipient_token(SECRET, "oct", 2),
        recipient_token(SECRET, "nov", 1),
        recipient_token("other-secret", "oct", 1),
    }
    assert len(tokens) == 4
    assert all(len(token) == 16 for token in tokens)


def test_a_tracked_link_never_carries_the_raw_id_or_the_external_id(make: Make) -> None:
    url = make("{{ track('https://e.com/p') }}").render(ZHANG)
    assert "987654" not in url
    assert "zhang" not in url
    assert query(url)["rt"] != [str(ZHANG.contact_id)]


def test_an_empty_tracking_secret_is_refused(templates: Path) -> None:
    with pytest.raises(ValueError, match="tracking_secret"):
        MessageRenderer(templates, "x", {}, campaign="c", channel="m", tracking_secret="")


# check_length


def test_check_length_reports_the_template_recipient_and_both_numbers() -> None:
    error = raised(
        lambda: check_length(
            "x" * 2345,
            2000,
            template="templates/course_invite.j2",
            recipient="u123",
            channel="mock",
        )
    )
    assert str(error) == (
        "templates/course_invite.j2: the message for 'u123' is 2,345 characters; "
        "channel 'mock' allows 2,000"
    )
    error = raised(lambda: check_length("ab", 1, template="t.j2", recipient="u1"))
    assert str(error) == "t.j2: the message for 'u1' is 2 characters; the limit is 1"


def test_check_length_counts_characters_not_bytes() -> None:
    check_length("你好👋" * 100, 300, template="t", recipient="u")
    with pytest.raises(TemplateError):
        check_length("你好👋" * 100 + "!", 300, template="t", recipient="u")


def test_check_length_refuses_a_non_positive_limit() -> None:
    with pytest.raises(ValueError):
        check_length("", 0, template="t", recipient="u")


# validate_template


def test_validation_reports_each_distinct_problem_once_with_a_count(templates: Path) -> None:
    (templates / "m.j2").write_text(
        "{{ contact.name }}\n{{ contact.attrs.city }}\n{{ 10 // (contact.attrs.level | int) }}\n",
        encoding="utf-8",
    )
    people = [
        RecipientView(1, "ok", "A", (), {"city": "x", "level": "2"}),
        RecipientView(2, "no-city-1", "B", (), {"level": "1"}),
        RecipientView(3, "no-city-2", "C", (), {"level": "1"}),
        RecipientView(4, "zero", "D", (), {"city": "y", "level": "0"}),
    ]
    problems = validate_template(
        templates, "m", {}, people, campaign="c", channel="mock", tracking_secret="s"
    )
    assert [(p.error.lineno, p.recipient, p.count) for p in problems] == [
        (2, "no-city-1", 2),
        (3, "zero", 1),
    ]
    assert str(problems[0]) == "templates/m.j2 line 2: 'dict object' has no attribute 'city'"


def test_validation_reports_overlong_messages_as_one_problem(templates: Path) -> None:
    (templates / "m.j2").write_text("{{ contact.name }}", encoding="utf-8")
    people = [RecipientView(i, f"u{i}", "x" * (5 + i), (), {}) for i in range(4)]
    problems = validate_template(
        templates, "m", {}, people, campaign="c", channel="mock", tracking_secret="s", max_len=6
    )
    assert [(p.error.kind, p.recipient, p.count) for p in problems] == [("length", "u2", 2)]


def test_validation_of_a_template_that_does_not_compile_is_that_one_problem(
    templates: Path,
) -> None:
    (templates / "m.j2").write_text("{% for %}", encoding="utf-8")
    problems = validate_template(
        templates, "m", {}, [ZHANG], campaign="c", channel="mock", tracking_secret="s"
    )
    assert [(p.error.kind, p.recipient, p.count) for p in problems] == [("syntax", None, 0)]
    assert str(problems[0]).startswith("templates/m.j2 line 1: ")


def test_validation_of_a_good_template_finds_nothing(templates: Path) -> None:
    (templates / "m.j2").write_text("hi {{ contact.name }}", encoding="utf-8")
    args = {"campaign": "c", "channel": "mock", "tracking_secret": "s"}
    assert validate_template(templates, "m", {}, [ZHANG, WANG], **args) == []


# list_templates and render_file


def test_list_templates_names_message_templates_but_not_reply_content(templates: Path) -> None:
    (templates / "replies" / "knowledge").mkdir(parents=True)
    (templates / "replies" / "persona.j2").write_text("p", encoding="utf-8")
    (templates / "replies" / "knowledge" / "a.md").write_text("## q", encoding="utf-8")
    (templates / "promos").mkdir()
    (templates / "promos" / "spring.j2").write_text("s", encoding="utf-8")
    (templates / "welcome.j2").write_text("w", encoding="utf-8")
    (templates / "notes.txt").write_text("n", encoding="utf-8")
    assert list_templates(templates) == ["promos/spring", "welcome"]


def test_render_file_renders_any_file_in_the_same_sandbox(templates: Path) -> None:
    (templates / "p.j2").write_text("{{ a }}\n{{ b.__class__ }}", encoding="utf-8")
    error = raised(lambda: render_file(templates, "p.j2", {"a": 1, "b": "x"}))
    assert str(error).startswith("templates/p.j2 line 2: blocked by the sandbox")


# The shipped templates


def shipped_invite(**overrides: str) -> MessageRenderer:
    variables = {**COURSE_VARS, **overrides}
    return MessageRenderer(
        SHIPPED,
        "course_invite",
        variables,
        campaign="py-oct",
        channel="wecom",
        tracking_secret=SECRET,
    )


def documented_variables(path: Path) -> list[str]:
    """The names the template's leading comment lists under 'Variables'."""
    comment = path.read_text(encoding="utf-8").split("#}")[0]
    block = comment.split("Variables", 1)[1].split("Contact fields", 1)[0]
    return re.findall(r"^\s{4}(\w+)\s", block, flags=re.MULTILINE)


def test_the_shipped_course_invite_documents_course_name_course_url_and_group_url() -> None:
    assert documented_variables(SHIPPED / "course_invite.j2") == [
        "course_name",
        "course_url",
        "group_url",
    ]


def test_the_shipped_course_invite_renders_with_its_documented_variables() -> None:
    text = shipped_invite().render(ZHANG)
    tracked = re.search(r"https://edu\.example\.com/\S+", text)
    assert tracked is not None
    assert tracked.group().startswith("https://edu.example.com/c/py-data?from=wechat&utm_source=")
    assert tracked.group().endswith("#outline")
    assert query(tracked.group())["rt"] == [recipient_token(SECRET, "py-oct", ZHANG.contact_id)]
    assert COURSE_VARS["group_url"] in text
    assert "张伟" in text and "《Python 数据分析入门》" in text and "上海" in text
    assert text.splitlines()[-1] == '回复"退订"不再接收'
    assert len(text) < 260


def test_the_shipped_course_invite_works_without_a_name_or_city() -> None:
    text = shipped_invite().render(RecipientView(5, "x", "", (), {}))
    assert text.startswith("同学您好")
    assert "\n\n" not in text


@pytest.mark.parametrize("variable", ["course_name", "course_url", "group_url"])
def test_the_shipped_course_invite_needs_every_documented_variable(variable: str) -> None:
    variables = {k: v for k, v in COURSE_VARS.items() if k != variable}
    renderer = MessageRenderer(
        SHIPPED, "course_invite", variables, campaign="c", channel="m", tracking_secret="s"
    )
    error = raised(lambda: renderer.render(ZHANG))
    assert error.path == "templates/course_invite.j2"
    assert error.detail == f"'{variable}' is undefined"


def test_the_shipped_persona_renders_with_the_account_and_its_knowledge() -> None:
    knowledge = (SHIPPED / "replies" / "knowledge" / "courses.md").read_text(encoding="utf-8")
    prompt = render_file(
        SHIPPED, "replies/persona.j2", {"account_name": "思语学堂·小林老师", "knowledge": knowledge}
    )
    assert "思语学堂·小林老师" in prompt
    assert prompt.endswith(knowledge.rstrip("\n"))
    assert "AI" in prompt and "[HANDOFF]" in prompt
    assert "Variables" not in prompt  # the documenting comment is not part of the prompt


def test_the_shipped_knowledge_covers_the_topics_operators_are_asked_about() -> None:
    pages = sorted((SHIPPED / "replies" / "knowledge").glob("*.md"))
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    for topic in ("课程介绍", "价格", "开课时间", "学习群", "退款"):
        assert any(topic in heading for heading in headings), topic
