"""Renders per second of the shipped `course_invite.j2`, against baselines from the same run.

    .venv/bin/python -m bench.render [--n 50000]

Baselines: `str.format` of similar copy (the floor of any templating) and the bare HMAC that
`track()` computes per recipient. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import time
from collections.abc import Callable
from pathlib import Path

from worker.render import MessageRenderer, RecipientView

ROOT = Path(__file__).resolve().parent.parent
VARIABLES = {
    "course_name": "Python 数据分析入门",
    "course_url": "https://edu.example.com/c/py-data",
    "group_url": "https://work.weixin.qq.com/gm/3f9a2c1d",
}


def rate(label: str, n: int, fn: Callable[[int], object], repeats: int = 5) -> float:
    """Call `fn(i)` n times in `repeats` rounds; print the best round's calls per second.

    The best round is the least disturbed by other processes on a shared machine.
    """
    per_round = max(n // repeats, 1)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(per_round):
            fn(i)
        best = min(best, time.perf_counter() - start)
    per_s = per_round / best
    print(f"{label:<42} {per_s:>12,.0f} /s  ({1e6 / per_s:6.1f} µs each)")
    return per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    n = parser.parse_args().n
    recipients = [
        RecipientView(i, f"wx_{i}", f"学员{i}", ("python",), {"city": "上海"} if i % 2 else {})
        for i in range(1000)
    ]
    start = time.perf_counter()
    renderer = MessageRenderer(
        ROOT / "templates", "course_invite", VARIABLES,
        campaign="bench", channel="mock", tracking_secret="bench-secret",
    )  # fmt: skip
    print(f"compile course_invite.j2: {(time.perf_counter() - start) * 1e3:.1f} ms")

    key = b"bench-secret"
    fmt = '{name}您好\n《{course}》开课啦！\n{url}?rt={rt}\n{group}\n回复"退订"不再接收'
    rate("baseline: hmac token only", n, lambda i: hmac.new(key, b"bench:%d" % i, hashlib.sha256))
    rate(
        "baseline: str.format + hmac",
        n,
        lambda i: fmt.format(
            name=recipients[i % 1000].name,
            course=VARIABLES["course_name"],
            url=VARIABLES["course_url"],
            rt=hmac.new(key, b"bench:%d" % i, hashlib.sha256).hexdigest()[:16],
            group=VARIABLES["group_url"],
        ),
    )
    rate(
        "MessageRenderer.render(course_invite)", n, lambda i: renderer.render(recipients[i % 1000])
    )


if __name__ == "__main__":
    main()
