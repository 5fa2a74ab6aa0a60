"""The product's pages work under ``Content-Security-Policy: default-src 'self'``.

``tests/security/csp.py`` (listed in ``tests/settings.py``) sends the policy of
``TEST_CONTENT_SECURITY_POLICY``; the ``settings`` fixture switches it on for the live
server (same process, read per request). Chromium visits every page type
(``tour.py``) with hostile values present and:

- reports no CSP violation (Chromium logs each one to the console);
- the pages' own HTML has no inline ``<script>`` (every one has a ``src``) and no
  ``on*=`` attribute;
- what needs a script or none still works: a collapsed diff ``<details>`` opens, the
  event browser's username suggestions (``audit_admin/js/events.js``) arrive, Django's
  ``actions.js`` counts the selected rows.

The last step injects an inline script on purpose: the policy blocks it and the
console reports it, which shows that violations would be seen.
"""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from playwright.sync_api import Page, expect

from tests.e2e.tour import PAGE_TYPES, tour
from tests.security.world import PAYLOADS, build_hostile, make_users

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

POLICY = "default-src 'self'"
VIOLATION = "Content Security Policy"


def inline_code(html: str) -> list[str]:
    """Inline scripts and ``on*`` event handler attributes in ``html``."""
    page = BeautifulSoup(html, "html.parser")
    found = [str(s)[:120] for s in page.find_all("script") if not s.get("src")]
    for tag in page.find_all(True):
        found += [f"<{tag.name} {a}=...>" for a in tag.attrs if a.lower().startswith("on")]
    return found


def test_every_page_type_works_under_a_strict_policy(page, login, settings):
    settings.TEST_CONTENT_SECURITY_POLICY = POLICY
    users = make_users()
    world = build_hostile("".join(PAYLOADS.values()), users.superuser)
    console: list[str] = []
    documents: dict[str, str | None] = {}
    page.on("console", lambda message: console.append(message.text))
    page.on(
        "response",
        lambda response: (
            documents.__setitem__(response.url, response.headers.get("content-security-policy"))
            if response.request.resource_type == "document"
            else None
        ),
    )
    login("root")
    inline: dict[str, list[str]] = {}
    checked: list[str] = []

    def check(name: str, page: Page) -> None:
        inline[name] = inline_code(page.content())
        if name == "event browser":
            # A collapsed diff opens without script.
            details = page.locator("details.audit-changes").first
            expect(details).not_to_have_attribute("open", "")
            details.locator("summary").click()
            expect(details).to_have_attribute("open", "")
            # events.js (an external file) fetches username suggestions.
            page.locator("#id_user").press_sequentially("ro")
            expect(page.locator("#audit-user-options option")).to_have_count(1)
            expect(page.locator("#audit-user-options option")).to_have_attribute("value", "root")
            # Django's actions.js counts the selected rows.
            rows = page.locator("#result_list tbody tr[data-event]").count()
            page.locator("#action-toggle").check()
            expect(page.locator(".action-counter")).to_have_text(f"{rows} of {rows} selected")
            page.locator("#action-toggle").uncheck()
            expect(page.locator(".action-counter")).to_have_text(f"0 of {rows} selected")
            checked.append(name)

    assert tour(page, world, check) == list(PAGE_TYPES)
    assert checked == ["event browser"]
    assert documents and set(documents.values()) == {POLICY}, documents
    assert {name: found for name, found in inline.items() if found} == {}
    assert [m for m in console if VIOLATION in m] == []

    # The control: an inline script is refused, and the console says so.
    inject = """() => {
        const script = document.createElement("script");
        script.textContent = "window.inlineRan = true;";
        document.body.append(script);
    }"""
    with page.expect_console_message(lambda message: VIOLATION in message.text):
        page.evaluate(inject)
    assert page.evaluate("() => window.inlineRan === undefined")
