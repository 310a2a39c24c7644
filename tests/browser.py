"""Headless Debian Chromium through Playwright, for the tests of pages (never a browser
download). Tests using the `browser` fixture skip, with a message, without either."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser tests need playwright (pip install 'clarion[test]')"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        yield launched
        launched.close()


class Watched:
    """A page with its console messages of the given kinds, uncaught exceptions, and every
    request it made; `check()` asserts there were none of the first two and that every request
    went where `allowed` says it may."""

    def __init__(
        self,
        browser: Any,
        *,
        allowed: Callable[[str], bool],
        console: tuple[str, ...] = ("error",),
        **context: Any,
    ) -> None:
        self.allowed = allowed
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in console else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def check(self) -> None:
        assert self.errors == []
        assert [url for url in self.requests if not self.allowed(url)] == []
        assert self.requests, "the page made no request at all"

    def close(self) -> None:
        self.page.close()  # pagehide: a page closes its streams
        self.context.close()
