"""Per-object history in a real browser: timeline, diff, revert, restore, escaping."""

from __future__ import annotations

import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import expect

import audit_app
from shop.models import Customer, Order, OrderItem, Product

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
XSS = '<script>alert("x")</script>"><img src=x onerror=alert(1)>'


@pytest.fixture
def seeded() -> None:
    call_command("seed", stdout=StringIO())


@pytest.fixture
def dialogs(page):
    """Every JavaScript dialog the page opens (there must be none)."""
    opened: list[str] = []
    page.on("dialog", lambda dialog: (opened.append(dialog.message), dialog.dismiss()))
    return opened


def shoot(page, name: str) -> None:
    """Refresh the documentation's screenshots when AUDIT_SCREENSHOTS=1 is set."""
    if not os.environ.get("AUDIT_SCREENSHOTS"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 900})
    # Show the newest diff unfolded, as a reader would open it.
    page.locator("details.audit-changes").evaluate_all(
        "ds => ds.slice(0, 1).forEach(d => d.open = true)"
    )
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_editor_edits_sees_the_diff_and_reverts(seeded, login, dialogs):
    order = (
        Order.objects.filter(status="new").order_by("pk").first()
        or Order.objects.order_by("pk").first()
    )
    page = login("editor")
    page.goto(reverse("admin:shop_order_change", args=[order.pk]))
    page.locator("#id_notes").fill("Leave the parcel with the neighbour at number 12.")
    page.locator("#id_status").select_option("shipped")
    page.locator("input[name='_save']").click()
    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")

    page.goto(reverse("admin:shop_order_change", args=[order.pk]))
    page.get_by_role("link", name="History", exact=True).click()
    newest = page.locator("table.audit-timeline > tbody > tr").first
    expect(newest.locator(".audit-action")).to_have_text("changed")
    expect(newest.locator("tr[data-field=status] .audit-new")).to_have_text("Shipped")
    expect(newest).to_contain_text("editor")
    shoot(page, "history-timeline.png")

    # Compare the version before the edit with the current object.
    page.locator("table.audit-timeline > tbody > tr").nth(1).locator("input[name=a]").check()
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("table.audit-diff tr[data-field=status]")).to_be_visible()
    shoot(page, "history-compare.png")

    page.go_back()
    page.locator("table.audit-timeline > tbody > tr").nth(1).get_by_role(
        "button", name="Revert to this version"
    ).click()
    expect(page.locator("h1")).to_contain_text("Revert")
    expect(page.locator("table.audit-revert-diff tr[data-field=status]")).to_be_visible()
    page.locator("#audit-reason").fill("shipped by mistake")
    shoot(page, "history-revert.png")
    page.get_by_role("button", name="Yes, revert").click()

    expect(page.locator(".messagelist .success")).to_contain_text("was reverted")
    order.refresh_from_db()
    assert order.status != "shipped"
    page.get_by_role("link", name="History", exact=True).click()
    expect(
        page.locator("table.audit-timeline > tbody > tr").first.locator(".audit-action")
    ).to_have_text("reverted")
    assert dialogs == []


def test_editor_restores_a_deleted_product(seeded, login):
    ordered = OrderItem.objects.values("product")
    product = (
        Product.objects.filter(digitalproduct__isnull=True)
        .exclude(pk__in=ordered)
        .order_by("pk")
        .first()
    )
    if product is None:
        product = Product.objects.create(sku="e2e-restore", name="Restorable", price=5)
    pk, name = product.pk, product.name
    product.delete()
    page = login("editor")
    page.goto(reverse("admin:shop_product_changelist"))
    page.get_by_role("link", name="Deleted products").click()
    row = page.locator("table.audit-deleted > tbody > tr", has_text=name).first
    row.get_by_role("button", name="Restore").click()
    shoot(page, "history-restore.png")
    page.get_by_role("button", name="Yes, restore it").click()
    expect(page.locator(".messagelist .success")).to_contain_text("was restored")
    assert Product.objects.get(pk=pk).name == name


def test_viewer_sees_history_without_revert_buttons(seeded, login):
    order = Order.objects.order_by("pk").first()
    page = login("viewer")
    page.goto(reverse("admin:shop_order_history", args=[order.pk]))
    expect(page.locator("table.audit-timeline > tbody > tr").first).to_be_visible()
    expect(page.get_by_role("button", name="Revert to this version")).to_have_count(0)


def test_hostile_values_render_as_text(seeded, login, dialogs):
    with audit_app.context(user=None, username=XSS, reason=XSS):
        customer = Customer.objects.create(name=XSS, email="xss@example.org")
        customer.name = XSS + " (edited)"
        customer.save()
    page = login("admin")
    page.goto(reverse("admin:shop_customer_history", args=[customer.pk]))
    newest = page.locator("table.audit-timeline > tbody > tr").first
    expect(newest.locator("tr[data-field=name] .audit-new")).to_have_text(XSS + " (edited)")
    expect(newest).to_contain_text("Reason: " + XSS)
    assert dialogs == []
