"""Browser fixtures: one headless Chromium per session, a fresh page per test.

While Playwright's sync API is active, its asyncio event loop counts as running in the
test thread. Django then refuses synchronous ORM calls there, and ``asyncio.run()``
fails in any test that runs meanwhile. So the browser tests run last, and Django's
guard is switched off only while the browser is up: the tests and the live server
use the ORM synchronously only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect, sync_playwright

SYSTEM_CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the browser tests to the end of the run (see the module docstring)."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


@pytest.fixture(scope="session")
def async_unsafe_allowed() -> Iterator[None]:
    """Let Django run sync ORM calls while Playwright's event loop is in this thread."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def browser(async_unsafe_allowed) -> Iterator[Browser]:
    """Launch headless Chromium: Debian's /usr/bin/chromium if present, else Playwright's."""
    options: dict = {"headless": True, "args": LAUNCH_ARGS}
    if SYSTEM_CHROMIUM.exists():
        options["executable_path"] = str(SYSTEM_CHROMIUM)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(**options)
        except Exception as exc:
            raise RuntimeError(
                f"Chromium could not be started ({exc}). Install it with "
                "'apt-get install chromium' (Debian) or "
                "'.venv/bin/python -m playwright install chromium'."
            ) from exc
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    """A page in a fresh browser context (own cookies) whose base URL is the live server."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def login(page: Page, live_server) -> Callable[..., Page]:
    """Log in through the admin's real login form; returns the page on the admin index."""

    def login(username: str, password: str | None = None) -> Page:
        page.goto(reverse("admin:login"))
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password if password is not None else username)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(live_server.url + reverse("admin:index"))
        return page

    return login
