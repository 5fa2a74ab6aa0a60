"""Hostile values in a real browser: no script runs, on any page type.

The payload (a script tag, an ``onerror`` image after an attribute break-out, a
right-to-left override and zero-width characters) is in field values, JSON keys, the
username, URL, reason, request id and command of the context. Without a
Content-Security-Policy (which would hide a broken escape), Chromium visits every
page type (``tour.py``): no dialog opens, no script error happens, and the payload is
on the page as text. The parsed-HTML proof is ``tests/security/test_escaping.py``.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.tour import PAGE_TYPES, tour
from tests.security.world import PAYLOADS, build_hostile, make_users

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAYLOAD = "".join(PAYLOADS.values())
# The page types whose main content shows a value the payload was written into (the
# change form shows the order, whose customer's name is the payload, in a widget).
SHOWS_PAYLOAD = set(PAGE_TYPES) - {"change form"}


def test_hostile_values_run_no_script_on_any_page(page, login):
    users = make_users()
    world = build_hostile(PAYLOAD, users.superuser)
    dialogs: list[str] = []
    errors: list[str] = []
    injected: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: errors.append(str(error)))
    login("root")

    def check(name: str, page: Page) -> None:
        if name in SHOWS_PAYLOAD:
            expect(page.locator("#content").get_by_text(PAYLOAD).first).to_be_attached()
        # Script would have run by now: the page and its deferred scripts are loaded.
        if page.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length"):
            injected.append(name)

    visited = tour(page, world, check)
    assert visited == list(PAGE_TYPES)
    assert dialogs == []
    assert injected == []
    assert errors == []
