"""Browser tests: pytest-django's live server, Debian's Chromium driven by Playwright.

    @pytest.mark.e2e
    @pytest.mark.django_db(transaction=True)   # the live server must see committed rows
    def test_something(live_server, page, screenshot):
        page.goto(live_server.url + "/")
        screenshot("home")

Chromium is /usr/bin/chromium (`apt-get install chromium`, see the Makefile's `chromium`
target; never `playwright install`), or CHROMIUM. Pages open at 1366x768. Screenshots go
to var/screenshots/ (SCREENSHOT_DIR).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 768}
# Playwright waits this long for a selector or a navigation before failing.
DEFAULT_TIMEOUT_MS = 15_000


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium for one test.

    Playwright's sync API keeps an asyncio loop on this thread, which makes Django refuse
    ORM calls from the test (SynchronousOnlyOperation) although they are synchronous:
    allowed for the duration of the test only.
    """
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page at 1366x768."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """var/screenshots/ of the checkout (where the issues ask for them, also under
    `make test`, whose VAR_DIR is var/test), or SCREENSHOT_DIR."""
    path = Path(os.environ.get("SCREENSHOT_DIR") or settings.BASE_DIR / "var" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def screenshot(page: Any, screenshot_dir: Path) -> Callable[[str], Path]:
    """`screenshot(name)`: save the whole page as var/screenshots/<name>.png."""

    def take(name: str) -> Path:
        path = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
