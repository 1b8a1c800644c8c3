"""The console's pure parts: the sends-per-minute SVG from constructed counts, the language
choice, and the catalogs (every msgid of the templates and modules has a Chinese translation).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir

from worker.console.chart import HEIGHT, LEFT, TOP, WIDTH, ChartText, nice_max, rate_chart
from worker.console.i18n import choose_language, load_translations

CONSOLE = Path(__file__).resolve().parent.parent / "worker" / "console"
TEXT = ChartText(title="Sends per minute", x_label="time", y_label="msgs/min", empty="nothing")
START = datetime(2026, 12, 6, 12, 0)  # naive UTC: 20:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


def points(svg: str, account: str) -> list[tuple[float, float]]:
    found = re.search(rf'data-account="{account}"[^>]*points="([^"]+)"', svg)
    assert found, svg
    return [(float(x), float(y)) for x, y in (p.split(",") for p in found.group(1).split())]


def test_the_chart_draws_one_line_per_account_scaled_to_a_round_maximum() -> None:
    series = {
        "a1": {START: 4, START + timedelta(minutes=30): 18},
        "a2": {START + timedelta(minutes=59): 7},
    }
    svg = str(rate_chart(series, START, 60, SHANGHAI, TEXT))
    assert svg.startswith("<svg") and '<title id="rate-chart-title">Sends per minute</title>' in svg
    assert 'role="img"' in svg and "a1: 22; a2: 7" in svg  # the description for screen readers
    a1, a2 = points(svg, "a1"), points(svg, "a2")
    assert len(a1) == len(a2) == 60
    base = HEIGHT - 28  # the x axis
    assert a1[0] == (LEFT, pytest.approx(TOP + (base - TOP) * (1 - 4 / 20)))  # top is 20
    assert a1[30][1] == pytest.approx(TOP + (base - TOP) * (1 - 18 / 20))
    assert a1[1][1] == base and a2[0][1] == base  # minutes without sends are 0
    assert a2[-1][0] == WIDTH - 12
    ticks = re.findall(r'class="tick x"[^>]*>([^<]+)<', svg)
    assert ticks == ["20:00", "20:10", "20:20", "20:30", "20:40", "20:50"]  # Shanghai time
    assert re.findall(r'class="tick y"[^>]*>(\d+)<', svg) == ["0", "10", "20"]
    assert ">msgs/min</text>" in svg and ">time</text>" in svg
    legend = re.findall(r'<g class="legend" data-account="(\w+)"><rect [^>]*fill="(#\w+)"', svg)
    colours = dict(re.findall(r'data-account="(\w+)" fill="none" stroke="(#\w+)"', svg))
    assert legend == [("a1", colours["a1"]), ("a2", colours["a2"])]  # each swatch its line's


def test_an_empty_chart_says_so_and_names_are_escaped() -> None:
    assert ">nothing</text>" in str(rate_chart({}, START, 60, SHANGHAI, TEXT))
    svg = str(rate_chart({"<b>&": {START: 1}}, START, 10, SHANGHAI, TEXT))
    assert "<b>" not in svg and 'data-account="&lt;b&gt;&amp;"' in svg
    with pytest.raises(ValueError, match="at least 2"):
        rate_chart({}, START, 1, SHANGHAI, TEXT)


def test_the_y_axis_top_is_one_two_or_five_times_a_power_of_ten() -> None:
    assert [nice_max(n) for n in (0, 5, 6, 11, 20, 21, 99, 101)] == [5, 5, 10, 20, 20, 50, 100, 200]


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, "en-US,en;q=0.9,zh;q=0.5", "en"),
        (None, "fr-FR, en;q=0.3", "en"),
        (None, "zh-Hans-CN", "zh"),
        (None, "en;q=0, zh;q=0.1", "zh"),
        (None, None, "zh"),
        ("en", "zh-CN", "en"),
        ("xx", "en", "en"),
    ],
)
def test_the_language_is_the_cookies_else_the_best_accept_language_match(
    cookie: str | None, header: str | None, expected: str
) -> None:
    assert choose_language(cookie, header) == expected


def msgids() -> set[str]:
    method_map = [("templates/**.html", "jinja2"), ("*.py", "python")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        CONSOLE, method_map, options_map=options, keywords={"_": None, "gettext": None}
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_console_message_has_a_chinese_translation() -> None:
    ids = msgids()
    assert len(ids) > 100 and "Per-recipient log" in ids and "Refused: %(reason)s" in ids
    zh = load_translations("zh")
    untranslated = sorted(i for i in ids if zh.gettext(i) == i or not zh.gettext(i).strip())
    assert untranslated == []
    for message in ids:  # the same placeholders, so formatting never fails
        assert sorted(re.findall(r"%\(\w+\)s", zh.gettext(message))) == sorted(
            re.findall(r"%\(\w+\)s", message)
        ), message


def test_no_template_shows_text_outside_gettext() -> None:
    """A rough guard: text between tags is a `{{ }}` expression, punctuation or a name."""
    allowed = re.compile(r"^[\s·→←☰%:/()#.,=\-–|—]*(siyu|中文|English|[1-5]\.)?[\s·:]*$")
    for path in sorted((CONSOLE / "templates").glob("*.html")):
        text = re.sub(r"{[{%#].*?[%}#]}", "", path.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", text, flags=re.S)
        for chunk in re.findall(r">([^<]+)<", text):
            assert allowed.match(chunk.strip()), f"{path.name}: {chunk.strip()!r}"
