"""Our pages under django-unfold with ``AUDIT_ADMIN_THEME = "unfold"``, in Chromium.

Run by ``tests/e2e/test_unfold_theme.py`` in a pytest of its own with
``--ds tests.settings_unfold`` (settings are per process; unfold replaces the admin
site when its app loads). Not collected by the main suite: the file name does not
start with ``test_``.

At 1280x800, light and dark mode: every page has its title; our actions are unfold
buttons (a background or a border, padding), inputs have borders, timeline rows start
on one line, the event browser's filters sit beside the table, the export links appear
once, the changelist's buttons are unfold header actions, the version page is laid
out like unfold's change form, nothing scrolls sideways, and our markup adds no
inline script, event handler or style attribute.

``AUDIT_SCREENSHOTS=1`` refreshes ``docs/img/theme-unfold-*.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import Locator, Page, expect

from audit_app.models import AuditEvent
from shop.models import Customer, Order
from tests.e2e.test_csp import inline_code

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
TRANSPARENT = ("rgba(0, 0, 0, 0)", "transparent")
UNFOLD_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'"
)
VIOLATION = "Content Security Policy"


@pytest.fixture
def admin_page(page: Page, live_server) -> Iterator[Page]:
    """The seeded shop, logged in as ``admin`` through unfold's login form."""
    call_command("seed", stdout=StringIO())
    page.set_viewport_size(VIEWPORT)
    documents: dict[str, str] = {}
    page.on(
        "response",
        lambda r: (
            documents.__setitem__(r.url, r.text())
            if r.request.resource_type == "document" and r.ok
            else None
        ),
    )
    # unfold's login form keeps no "next" field: say where to go in the URL.
    page.goto(f"{reverse('admin:login')}?next={reverse('admin:index')}")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("admin")
    page.locator("form [type=submit]").click()
    expect(page).to_have_url(live_server.url + reverse("admin:index"))
    yield page
    # Every page our theme drew: no inline script or handler anywhere, and no style
    # attribute in our part of it (a strict policy would block them).
    for url, html in documents.items():
        assert inline_code(html) == [], url
        main = BeautifulSoup(html, "html.parser").select_one(".audit-main")
        if main is not None:
            assert main.select("[style]") == [], url


def shoot(page: Page, name: str) -> None:
    """Refresh a documentation screenshot when AUDIT_SCREENSHOTS=1 is set."""
    if os.environ.get("AUDIT_SCREENSHOTS"):
        page.screenshot(path=str(SCREENSHOTS / f"theme-unfold-{name}.png"))


def no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths}"


def has_title(page: Page, text: str) -> None:
    """The page title, as unfold's title component draws it."""
    title = page.locator(".audit-title")
    expect(title).to_have_count(1)
    expect(title).to_contain_text(text)
    assert float(title.evaluate("t => parseFloat(getComputedStyle(t).fontSize)")) >= 20


def is_button(locator: Locator) -> None:
    """Drawn as a button, not as text: a background or a border, and padding."""
    expect(locator).to_be_visible()
    style = locator.evaluate(
        "b => { const s = getComputedStyle(b); return [s.backgroundColor, s.borderTopWidth,"
        " s.borderTopStyle, parseFloat(s.paddingLeft), parseFloat(s.paddingTop)] }"
    )
    background, border, border_style, pad_x, pad_y = style
    assert background not in TRANSPARENT or (border != "0px" and border_style != "none"), style
    assert pad_x >= 8 and pad_y >= 4, style


def is_bordered(locator: Locator) -> None:
    style = locator.evaluate(
        "i => [getComputedStyle(i).borderTopWidth, getComputedStyle(i).borderTopStyle]"
    )
    assert style[0] != "0px" and style[1] == "solid", style


def is_header_action(page: Page, link: Locator) -> None:
    """An unfold header action: in the header, in a bordered item, no list bullet."""
    expect(page.locator("#header-inner").locator(link)).to_have_count(1)
    item = link.locator("xpath=ancestor::li[1]")
    style = item.evaluate(
        "li => [getComputedStyle(li).listStyleType, getComputedStyle(li).borderTopWidth]"
    )
    assert style[0] == "none" and style[1] != "0px", style


def test_history_pages(admin_page: Page, settings):
    page = admin_page
    # The tightest policy unfold works under (its Alpine.js evaluates expressions, its
    # colours are an inline style): our pages add nothing it would block.
    settings.TEST_CONTENT_SECURITY_POLICY = UNFOLD_POLICY
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if VIOLATION in m.text else None)
    order = max(Order.objects.all(), key=lambda o: AuditEvent.objects.tracks(o).count())

    # The changelist's buttons are header actions, like the change form's.
    page.goto(reverse("admin:shop_order_changelist"))
    is_header_action(page, page.locator("a.audit-deleted-link"))
    is_header_action(page, page.locator("a.audit-events-link"))
    no_horizontal_scroll(page)

    # Timeline: title, styled controls, rows whose cells start on one line.
    page.goto(reverse("admin:shop_order_history", args=[order.pk]))
    has_title(page, f"Change history: {order}")
    is_button(page.get_by_role("button", name="Compare"))
    is_button(page.get_by_role("button", name="Apply"))
    is_bordered(page.locator("#id_user"))
    is_bordered(page.locator("#id_action"))
    rows = page.locator("table.audit-timeline > tbody > tr")
    assert rows.count() >= 3
    for i in range(rows.count()):
        row = rows.nth(i)
        tops = [
            row.locator(selector).first.bounding_box()["y"]
            for selector in (
                "input[name=a]",
                ".audit-action",
                "td.audit-col-changes > *",
                "a.audit-view-version",
            )
        ]
        assert max(tops) - min(tops) <= 8, (i, tops)
    is_button(rows.nth(1).get_by_role("button", name="Revert to this version"))
    page.locator("details.audit-changes summary").first.click()
    no_horizontal_scroll(page)
    shoot(page, "timeline")

    # A version: laid out like unfold's change form (label beside the value).
    rows.first.locator("a.audit-view-version").click()
    expect(page.locator("body.audit-version")).to_have_count(1)
    has_title(page, str(order))
    line = page.locator("fieldset .field-line").first
    label, value = line.locator("label").bounding_box(), line.locator(".readonly").bounding_box()
    assert value["x"] > label["x"] + label["width"] - 1 and abs(value["y"] - label["y"]) < 12
    is_bordered(page.locator("fieldset .form-rows").first)
    no_horizontal_scroll(page)
    shoot(page, "version")
    page.go_back()

    # Compare, then the revert it offers.
    rows.nth(2).locator("input[name=a]").check()
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("body.audit-compare")).to_have_count(1)
    has_title(page, f"Compare versions of {order}")
    expect(page.locator("table.audit-diff")).to_be_visible()
    is_button(page.get_by_role("link", name="Back to the history"))
    revert = page.get_by_role("button", name="Revert to the earlier version")
    is_button(revert)
    no_horizontal_scroll(page)
    revert.click()
    expect(page.locator("body.audit-revert-confirmation")).to_have_count(1)
    has_title(page, f"Revert “{order}”")
    is_bordered(page.locator("#audit-reason"))
    is_button(page.get_by_role("link", name="No, go back"))
    confirm = page.get_by_role("button", name="Yes, revert")
    is_button(confirm)
    no_horizontal_scroll(page)
    shoot(page, "revert")
    confirm.click()
    expect(page.get_by_text("was reverted")).to_be_visible()

    # Deleted list and restore, from the changelist's header action.
    page.goto(reverse("admin:shop_customer_changelist"))
    page.locator("a.audit-deleted-link").click()
    expect(page.locator("body.audit-deleted-list")).to_have_count(1)
    has_title(page, "Deleted customers")
    is_bordered(page.locator("#audit-q"))
    restore = page.locator("table.audit-deleted > tbody > tr").first
    is_button(restore.get_by_role("button", name="Restore"))
    restore.get_by_role("button", name="Restore").click()
    expect(page.locator("body.audit-revert-confirmation")).to_have_count(1)
    has_title(page, "Restore “")
    confirm = page.get_by_role("button", name="Yes, restore it")
    is_button(confirm)
    no_horizontal_scroll(page)
    before = Customer.objects.count()
    confirm.click()
    expect(page.get_by_text("was restored")).to_be_visible()
    assert Customer.objects.count() == before + 1
    assert violations == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_event_browser(admin_page: Page, scheme: str):
    page = admin_page
    page.emulate_media(color_scheme=scheme)
    page.goto(reverse("admin:audit_app_auditevent_changelist"))
    expect(page.locator("body.audit-event-browser")).to_have_count(1)
    # unfold's header names the page; its html element carries the mode.
    expect(page.locator("#header-inner h1")).to_contain_text("Audit events")
    assert ("dark" in (page.locator("html").get_attribute("class") or "")) == (scheme == "dark")

    # The filters sit beside the table, not below it.
    table = page.locator(".audit-table-wrap").bounding_box()
    filters = page.locator("#changelist-filter").bounding_box()
    assert filters["x"] >= table["x"] + table["width"] - 1, (table, filters)
    assert filters["y"] < table["y"] + 100, (table, filters)
    assert page.locator("table#result_list").evaluate(
        "t => t.scrollWidth <= t.parentElement.clientWidth"
    )
    no_horizontal_scroll(page)

    # Export links once each, as header actions; styled controls.
    exports = page.locator("a.audit-export-link")
    expect(exports).to_have_count(2)
    assert len(set(exports.evaluate_all("links => links.map(a => a.href)"))) == 2
    is_header_action(page, exports.first)
    is_button(page.get_by_role("button", name="Apply"))
    is_button(page.get_by_role("button", name="Go"))
    for field in ("#id_user", "#id_model", "[name=created_at_after]", "#changelist-search"):
        is_bordered(page.locator(field))
    # Cards follow the mode (unfold's "dark" class, not the media query).
    card = page.locator(".audit-table-wrap").evaluate("w => getComputedStyle(w).backgroundColor")
    assert (card == "rgb(255, 255, 255)") == (scheme == "light"), card

    # Filtering and the bulk revert page still work, themed.
    page.locator("#id_model").select_option("shop.order")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"model=shop\.order"))
    page.locator("tbody input.action-select").first.check()
    page.locator("#changelist-form select[name=action]").select_option("revert_selected")
    page.get_by_role("button", name="Go").click()
    expect(page.locator("body.audit-bulk-revert")).to_have_count(1)
    has_title(page, "Revert the selected objects")
    is_button(page.get_by_role("link", name="No, go back"))
    no_horizontal_scroll(page)
    if scheme == "light" and os.environ.get("AUDIT_SCREENSHOTS"):
        page.goto(reverse("admin:audit_app_auditevent_changelist") + "?action=changed")
        page.locator("details.audit-changes").first.evaluate("d => { d.open = true }")
        shoot(page, "events")
