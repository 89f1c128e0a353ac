"""Debian's chromium driven by Playwright (never `playwright install`), with the network closed:
every request that leaves the service under test is aborted and remembered."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Route

CHROMIUM = "/usr/bin/chromium"
#: Headless, no sandbox (root), and none of the browser's own calls home.
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-default-apps", "--disable-domain-reliability"]


def launch(playwright: Playwright) -> Browser:
    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(f"{CHROMIUM} is missing: ci/setup.sh installs Debian's chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


@dataclass
class Tab:
    """A page and what went wrong in it: console errors, uncaught exceptions, outside requests."""

    page: Page
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


@contextmanager
def tab(browser: Browser, base_url: str, *, width: int = 1280, height: int = 900) -> Iterator[Tab]:
    context = browser.new_context(base_url=base_url, viewport={"width": width, "height": height})
    page = context.new_page()
    t = Tab(page)

    def console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            t.errors.append(f"console: {msg.text} ({msg.location.get('url', '')})")

    def outside(route: Route, request: Request) -> None:
        t.outside.append(request.url)
        route.abort()

    page.on("console", console)
    page.on("pageerror", lambda exc: t.errors.append(f"page error: {exc}"))
    context.route(lambda url: not url.startswith(base_url) and not url.startswith("data:"), outside)
    try:
        yield t
    finally:
        context.close()
