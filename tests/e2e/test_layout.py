"""Layout rules of the stock admin pages at 1280x800, in Chromium, as a new user sees them:
the event browser fits (every column visible, no horizontal scroll) with compact rows,
the version page has the change form's styling, compare headers tell versions a minute
apart, and keyboard focus is visible. Light and dark mode."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.urls import reverse
from playwright.sync_api import Page, expect

from audit_app.models import AuditEvent
from shop.models import Order

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VIEWPORT = {"width": 1280, "height": 800}
COLUMNS = ("Time", "User", "Action", "Model", "Object", "Changed fields", "Request")


@pytest.fixture
def seeded() -> None:
    call_command("seed", stdout=StringIO())


def no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_event_browser_fits_1280_with_every_column_and_compact_rows(
    seeded, login, page: Page, scheme
):
    page.set_viewport_size(VIEWPORT)
    page.emulate_media(color_scheme=scheme)
    login("admin")
    page.goto(reverse("admin:audit_app_auditevent_changelist"))
    expect(page.locator("#content h1")).to_have_text("Audit events")
    assert page.locator("#nav-sidebar").is_visible()  # the admin's default: navigation open
    no_horizontal_scroll(page)
    table = page.locator("table#result_list")
    box = page.locator(".audit-table-wrap").bounding_box()
    assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    for name in COLUMNS:
        header = table.locator("thead th", has_text=name).first
        cell = header.bounding_box()
        assert cell is not None, name
        assert box["x"] <= cell["x"] and cell["x"] + cell["width"] <= box["x"] + box["width"] + 1
        assert cell["x"] + cell["width"] <= VIEWPORT["width"], f"{name} is off-screen"
    # Rows stay compact: at most a couple of text lines while the diffs are folded.
    heights = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.offsetHeight)")
    assert heights and max(heights) <= 70, heights
    # The filters sit beside the table, not below it.
    filters = page.locator("#changelist-filter").bounding_box()
    assert filters["x"] >= box["x"] + box["width"] - 1
    assert filters["y"] < box["y"] + 100


def test_version_page_has_the_change_forms_styling(seeded, login, page: Page):
    page.set_viewport_size(VIEWPORT)
    order = Order.objects.order_by("pk").first()
    event = AuditEvent.objects.tracks(order).without_diffs().last()
    login("admin")
    page.goto(reverse("admin:shop_order_audit_version", args=[order.pk, event.id]))
    row = page.locator("fieldset .form-row").first
    # forms.css: each row is ruled off and its label sits beside the value, not above.
    assert row.evaluate("r => getComputedStyle(r).borderBottomStyle") == "solid"
    label = row.locator("label").bounding_box()
    value = row.locator(".readonly").bounding_box()
    assert value["x"] > label["x"] + label["width"] - 1
    assert abs(value["y"] - label["y"]) < 10
    no_horizontal_scroll(page)


def test_compare_headers_differ_for_versions_a_minute_apart(seeded, login, page: Page):
    page.set_viewport_size(VIEWPORT)
    order = Order.objects.order_by("pk").first()
    order.notes = "a minute later"
    order.save()
    first, _second = list(
        AuditEvent.objects.tracks(order).without_diffs().order_by("created_at", "event_id")
    )[-2:]
    with transaction.atomic(), connection.cursor() as cursor:
        # As the tables' owner may: history is append-only.
        cursor.execute("SET LOCAL session_replication_role = replica")
        table = first.source_event_model._meta.db_table
        cursor.execute(
            f"UPDATE \"{table}\" SET audit_created_at = audit_created_at - interval '1 minute'"
            " WHERE audit_id = %s",
            [first.event_id],
        )
    login("admin")
    page.goto(reverse("admin:shop_order_history", args=[order.pk]))
    rows = page.locator("table.audit-timeline > tbody > tr")
    rows.nth(1).locator("input[name=a]").check()
    rows.nth(0).locator("input[name=b]").check()
    page.get_by_role("button", name="Compare").click()
    headers = page.locator("table.audit-diff thead th").all_inner_texts()[1:]
    assert len(headers) == 2 and headers[0] != headers[1], headers


def test_keyboard_focus_is_visible(seeded, login, page: Page):
    page.set_viewport_size(VIEWPORT)
    order = Order.objects.order_by("pk").first()
    login("admin")
    page.goto(reverse("admin:shop_order_history", args=[order.pk]))
    link = page.locator("a.audit-view-version").first
    link.focus()
    outline = link.evaluate(
        "a => getComputedStyle(a).outlineStyle + ' ' + getComputedStyle(a).outlineWidth"
    )
    assert outline.split()[0] not in ("none", "") and outline.split()[1] != "0px", outline
