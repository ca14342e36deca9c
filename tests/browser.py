"""The system Chromium, headless, driven over the DevTools protocol by Playwright, for report tests.

The ``browser`` fixture in ``conftest.py`` launches it once per test module; :class:`BrowserPage`
loads one report and records what it logged and every request it made.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, ConsoleMessage, sync_playwright

CHROMIUM = os.environ.get("CULTURE_PROBE_CHROMIUM", "/usr/bin/chromium")
# no background traffic: this machine's network is closed, and a report must make no request
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@contextmanager
def headless_chromium(profile: Path) -> Iterator[BrowserContext]:
    """One headless Chromium with a fresh profile directory."""
    assert Path(CHROMIUM).is_file(), f"Chromium not found at {CHROMIUM}: apt-get install chromium"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield context
        context.close()


class BrowserPage:
    """One loaded page with everything it logged and every request it made."""

    def __init__(self, context: BrowserContext, path: Path, width: int = 1100) -> None:
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self.page = context.new_page()
        self.page.set_viewport_size({"width": width, "height": 900})
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url, wait_until="load")
        self.page.wait_for_selector("html[data-report-ready='1']")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console_errors.append(f"{message.type}: {message.text}")

    def assert_clean(self) -> None:
        """No console error or warning, no uncaught exception, no request but the page itself."""
        assert self.console_errors == []
        assert self.requests == [self.url]
        assert self.page.evaluate("typeof window.__pwned") == "undefined"
