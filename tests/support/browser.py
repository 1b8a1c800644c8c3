"""A real browser for the console's tests: Debian's `chromium`, driven by Playwright's sync API.

Nothing is downloaded: Playwright launches the system's chromium by path. Outside CI a
missing chromium or Playwright skips the test with what to install; in CI (CI=true) it fails.
Screenshots go to `SIYU_TEST_ARTEFACTS` if set, else `tests/artefacts/` of the repository.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from tests.conftest import IN_CI, ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
# Headless, no GPU, and no traffic of its own (updates, sync, QUIC probes); as root
# chromium refuses to start without --no-sandbox.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
INSTALL_HINT = "install Debian's chromium: apt-get install chromium"


def find_chromium() -> str | None:
    """The system chromium's executable, or None."""
    for path in CHROMIUM_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


def artefacts_dir() -> Path:
    """Where screenshots go (created): `SIYU_TEST_ARTEFACTS`, else `tests/artefacts/`."""
    configured = os.environ.get("SIYU_TEST_ARTEFACTS")
    directory = Path(configured) if configured else ROOT / "tests" / "artefacts"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def unavailable(why: str) -> NoReturn:
    """Skip with the reason outside CI; fail in CI, where the browser test must run."""
    if IN_CI:
        pytest.fail(
            f"the browser test needs chromium and Playwright in CI (CI=true): {why}; {INSTALL_HINT}"
        )
    pytest.skip(f"{why}; {INSTALL_HINT}")


@contextmanager
def chromium() -> Iterator[Browser]:
    """The system chromium, launched headless by Playwright; closed on leaving."""
    executable = find_chromium()
    if executable is None:
        unavailable("no chromium executable (looked at /usr/bin/chromium and PATH)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"the Python package playwright is not installed ({exc})")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_page(
    browser: Browser, base_url: str, *, locale: str = "en-US", **options: Any
) -> Iterator[Page]:
    """A page in a fresh context (its own cookies), 1280 px wide unless `viewport` says
    otherwise; `locale` sets the browser's Accept-Language."""
    options.setdefault("viewport", DESKTOP)
    context = browser.new_context(base_url=base_url, locale=locale, **options)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Page, step: str) -> Path:
    """A full-page screenshot named after the step (`sqlite/01-signin` makes a folder), saved
    as a test artefact; fails if the file is missing or empty."""
    path = artefacts_dir() / f"{step}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.is_file() and path.stat().st_size > 0, f"screenshot {path} was not written"
    return path
