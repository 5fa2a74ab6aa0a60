"""The global event browser in a real browser, on the seeded example shop.

Run with ``AUDIT_SCREENSHOTS=1`` to refresh the screenshots in ``docs/img/events-*.png``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import Page, expect

import audit_app
from audit_app.models import AuditEvent
from shop.models import Order

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture
def seeded() -> None:
    call_command("seed", stdout=StringIO())


def screenshot(page: Page, name: str) -> None:
    """Save ``docs/img/events-<name>.png`` when asked to (AUDIT_SCREENSHOTS=1)."""
    if os.environ.get("AUDIT_SCREENSHOTS"):
        page.screenshot(path=str(DOCS_IMG / f"events-{name}.png"), full_page=False)


def browser(page: Page) -> Page:
    page.set_viewport_size({"width": 1600, "height": 900})
    page.goto(reverse("admin:audit_app_auditevent_changelist"))
    expect(page.locator("#content h1")).to_have_text("Audit events")
    if page.locator("#nav-sidebar").is_visible():
        # The app list would take a third of the screenshots.
        page.locator("#toggle-nav-sidebar").click()
        page.evaluate("window.scrollTo(0, 0)")
    return page


def two_orders_changed_twice() -> tuple[list[Order], str]:
    """Two orders whose notes changed in request "e2e-before", then again later."""
    orders = list(Order.objects.order_by("pk")[:2])
    with audit_app.context(username="admin", request_id="e2e-before", url="/e2e"):
        for order in orders:
            order.notes = f"before {order.pk}"
            order.save()
    with audit_app.context(username="admin", request_id="e2e-after", url="/e2e"):
        for order in orders:
            order.notes = f"after {order.pk}"
            order.save()
    return orders, "e2e-before"


def test_filter_by_user_then_by_request_id(seeded, login):
    page = browser(login("admin"))
    if os.environ.get("AUDIT_SCREENSHOTS"):
        page.goto(reverse("admin:audit_app_auditevent_changelist") + "?action=changed")
        for summary in page.locator(".audit-changes summary").all()[:2]:
            summary.click()
        screenshot(page, "browser")
        browser(page)

    page.locator("#id_user").fill("editor")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"user=editor"))
    users = page.locator("#result_list tbody td.audit-col-user .audit-user-filter")
    expect(users.first).to_be_visible()
    assert set(users.all_inner_texts()) == {"editor"}
    screenshot(page, "user")

    # A change made through the admin gets a request id; click it in the browser.
    order = Order.objects.order_by("pk").first()
    page.goto(reverse("admin:shop_order_change", args=[order.pk]))
    page.locator("#id_notes").fill("changed in the browser test")
    page.locator("input[name='_save']").click()
    expect(page.locator(".messagelist .success")).to_be_visible()
    event = AuditEvent.objects.tracks(order).order_by("-created_at", "-event_id").first()
    request_id = event.metadata["request_id"]

    browser(page)
    newest = page.locator("#result_list tbody tr").first
    expect(newest).to_have_attribute("data-event", event.id)
    newest.locator(".audit-request-link").click()
    expect(page).to_have_url(re.compile(rf"request_id={request_id}"))
    rows = page.locator("#result_list tbody tr[data-event]")
    expected = AuditEvent.objects.filter(context__metadata__request_id=request_id)
    expect(rows).to_have_count(len(expected))
    expect(rows.first.locator(".audit-changes summary")).to_have_text("Notes")
    rows.first.locator(".audit-changes summary").click()
    # Long text shows as a word diff.
    expect(rows.first.locator("tr[data-field=notes] ins", has_text="browser")).to_be_visible()
    screenshot(page, "request")


def test_open_an_objects_history_from_a_row(seeded, login):
    page = browser(login("viewer"))
    page.locator("#id_model").select_option("shop.order")
    page.get_by_role("button", name="Apply").click()
    # The first row whose object still exists (deleted ones have no history page).
    row = page.locator("#result_list tbody tr[data-event]:has(.audit-history-link)").first
    label = row.locator(".audit-object-link").inner_text()
    row.locator(".audit-history-link").click()
    expect(page.locator("#content h1")).to_have_text(f"Change history: {label}")
    expect(page.locator("table.audit-timeline tbody tr").first).to_be_visible()


def test_export_csv_of_the_filtered_rows(seeded, login):
    page = browser(login("editor"))
    page.locator("#id_model").select_option("shop.order")
    page.locator("#id_action").select_option("changed")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"model=shop.order"))

    with page.expect_download() as info:
        page.get_by_role("link", name="Export CSV").click()
    download = info.value
    assert download.suggested_filename.startswith("audit-events-")
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text("utf-8"))))

    from audit_admin.action_filter import action_q

    expected = (
        AuditEvent.objects.across(Order)
        .filter(action_q("changed"))
        .order_by("-created_at", "-event_id")
    )
    assert [(r["object_id"], r["action"]) for r in rows] == [
        (e.obj_id, "changed") for e in expected
    ]
    assert {r["model"] for r in rows} == {"shop.Order"}


def test_bulk_revert_two_orders(seeded, login):
    orders, request_id = two_orders_changed_twice()
    page = browser(login("editor"))

    page.locator("#searchbar").fill(request_id)
    page.locator("#searchbar").press("Enter")
    rows = page.locator("#result_list tbody tr[data-event]")
    expect(rows).to_have_count(2)
    page.locator("#action-toggle").check()
    expect(page.locator(".action-counter")).to_have_text("2 of 2 selected")
    page.locator("#changelist-form select[name=action]").select_option("revert_selected")
    page.get_by_role("button", name="Go").click()

    expect(page.locator("#content h1")).to_have_text("Revert the selected objects")
    items = page.locator("section.audit-bulk-item")
    expect(items).to_have_count(2)
    for order in orders:
        item = page.locator("section.audit-bulk-item", has_text=str(order))
        notes = item.locator("tr[data-field=notes]")
        expect(notes.locator("del")).to_have_text("after")
        expect(notes.locator("ins")).to_have_text("before")
    page.get_by_label("Reason (optional)").fill("undo the e2e change")
    screenshot(page, "bulk-revert")
    page.get_by_role("button", name="Yes, revert all 2").click()

    expect(page.locator(".messagelist .success")).to_contain_text("Reverted 2 objects")
    for order in orders:
        order.refresh_from_db()
        assert order.notes == f"before {order.pk}"
        latest = AuditEvent.objects.tracks(order).order_by("-created_at", "-event_id").first()
        assert latest.action == "reverted"
        assert latest.metadata["reason"] == "undo the e2e change"


def test_activity_button_on_the_user_page(seeded, login):
    from django.contrib.auth import get_user_model

    editor = get_user_model().objects.get(username="editor")
    page = login("admin")
    page.goto(reverse("admin:auth_user_change", args=[editor.pk]))
    page.get_by_role("link", name="Activity").click()
    expect(page).to_have_url(re.compile(r"user=editor"))
    expect(page.locator("#id_user")).to_have_value("editor")
