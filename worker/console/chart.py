"""The dashboard's chart: messages sent per minute by each account, as inline SVG.

A pure function of the counts, drawn on the server: no script, no library, readable by a
screen reader (`<title>` and `<desc>`), scaled by its viewBox to any width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
X_TICK_MINUTES = 10
LEGEND_PER_ROW, LEGEND_STEP = 5, 130


@dataclass(frozen=True)
class ChartText:
    """The chart's words, in the reader's language."""

    title: str
    x_label: str
    y_label: str
    empty: str


def nice_max(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^k at or above `value` (at least 5): the y axis's top."""
    top = 5
    while top < value:
        top = top * 2 if str(top)[0] in "15" else top * 5 // 2
    return top


def rate_chart(
    series: Mapping[str, Mapping[datetime, int]],
    start: datetime,
    minutes: int,
    tz: ZoneInfo,
    text: ChartText,
) -> Markup:
    """An SVG line per account of its sends per minute for `minutes` minutes from `start`
    (naive UTC, a whole minute); minutes with no entry count 0. Times labelled in `tz`."""
    if minutes < 2:
        raise ValueError(f"minutes must be at least 2, got {minutes}")
    start = start.replace(second=0, microsecond=0)
    slots = [start + timedelta(minutes=i) for i in range(minutes)]
    peak = max((n for counts in series.values() for n in counts.values()), default=0)
    top = nice_max(peak)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + plot_w * i / (minutes - 1)

    def y(n: int) -> float:
        return TOP + plot_h * (1 - n / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="rate-chart-title rate-chart-desc" id="rate-chart" class="chart">',
        f'<title id="rate-chart-title">{escape(text.title)}</title>',
        f'<desc id="rate-chart-desc">{escape(_describe(series))}</desc>',
        *_y_axis(top, y, text.y_label),
        *_x_axis(slots, x, tz, text.x_label),
    ]
    for index, (name, counts) in enumerate(sorted(series.items())):
        colour = PALETTE[index % len(PALETTE)]
        points = " ".join(
            f"{x(i):.1f},{y(counts.get(slot, 0)):.1f}" for i, slot in enumerate(slots)
        )
        parts.append(
            f'<polyline class="series" data-account="{escape(name)}" fill="none" '
            f'stroke="{colour}" stroke-width="2" points="{points}">'
            f"<title>{escape(name)}: {sum(counts.get(s, 0) for s in slots)}</title></polyline>"
        )
    parts.extend(_legend(sorted(series)))
    if not series:
        parts.append(
            f'<text class="empty" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" '
            f'text-anchor="middle">{escape(text.empty)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every name and word in it went through escape())


def _legend(names: list[str]) -> list[str]:
    """A colour swatch and the name of each account, in rows across the top of the plot."""
    out = []
    for index, name in enumerate(names):
        row, col = divmod(index, LEGEND_PER_ROW)
        x, y = LEFT + 8 + col * LEGEND_STEP, TOP + 4 + row * 14
        out.append(
            f'<g class="legend" data-account="{escape(name)}">'
            f'<rect x="{x}" y="{y}" width="10" height="10" fill="{PALETTE[index % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="{y + 9}">{escape(name)}</text></g>'
        )
    return out


def _describe(series: Mapping[str, Mapping[datetime, int]]) -> str:
    return "; ".join(f"{name}: {sum(counts.values())}" for name, counts in sorted(series.items()))


def _y_axis(top: int, y: Callable[[int], float], label: str) -> list[str]:
    out = [f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{y(0):.1f}"/>']
    for n in (0, top // 2, top) if top % 2 == 0 else (0, top):
        out.append(
            f'<line class="grid" x1="{LEFT}" y1="{y(n):.1f}" x2="{WIDTH - RIGHT}" y2="{y(n):.1f}"/>'
            f'<text class="tick y" x="{LEFT - 4}" y="{y(n) + 4:.1f}" text-anchor="end">{n}</text>'
        )
    out.append(
        f'<text class="label" x="12" y="{TOP + (HEIGHT - TOP - BOTTOM) / 2:.0f}" '
        f'transform="rotate(-90 12 {TOP + (HEIGHT - TOP - BOTTOM) / 2:.0f})" '
        f'text-anchor="middle">{escape(label)}</text>'
    )
    return out


def _x_axis(
    slots: list[datetime], x: Callable[[int], float], tz: ZoneInfo, label: str
) -> list[str]:
    base = HEIGHT - BOTTOM
    out = [f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}"/>']
    for i, slot in enumerate(slots):
        if slot.minute % X_TICK_MINUTES == 0:
            out.append(
                f'<text class="tick x" x="{x(i):.1f}" y="{base + 14}" text-anchor="middle">'
                f"{slot.replace(tzinfo=UTC).astimezone(tz):%H:%M}</text>"
            )
    out.append(
        f'<text class="label" x="{WIDTH - RIGHT}" y="{HEIGHT - 2}" text-anchor="end">'
        f"{escape(label)}</text>"
    )
    return out
