"""The shop admin in a real browser: log in, open an order, edit it."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import expect

from shop.models import Order

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def seeded() -> None:
    call_command("seed", stdout=StringIO())


def order_with_items() -> Order:
    return Order.objects.filter(items__isnull=False).select_related("customer").distinct()[0]


def test_admin_sees_an_order_with_its_items(seeded, login):
    order = order_with_items()
    page = login("admin")

    page.goto(reverse("admin:shop_order_change", args=[order.pk]))

    content = page.locator("#content")
    expect(content.locator("h1")).to_have_text("Change order")
    expect(content.locator("h2").first).to_have_text(str(order))
    expect(page.locator(".field-customer")).to_contain_text(order.customer.name)
    expect(page.locator("#id_status")).to_have_value(order.status)
    expect(page.locator("#id_total")).to_have_value(str(order.total))
    items = page.locator("#items-group tr.form-row.has_original")
    expect(items).to_have_count(order.items.count())
    first = order.items.order_by("pk").select_related("product")[0]
    expect(items.first.locator("input[name$='-quantity']")).to_have_value(str(first.quantity))


def test_editor_change_is_saved_and_attributed(seeded, login):
    order = order_with_items()
    new_status = Order.Status.CANCELLED if order.status != "cancelled" else Order.Status.PAID
    page = login("editor")

    page.goto(reverse("admin:shop_order_change", args=[order.pk]))
    page.locator("#id_status").select_option(new_status)
    page.locator("input[name='_save']").click()

    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    order.refresh_from_db()
    assert order.status == new_status
    event = order.audit_events.select_related("audit_context__user").last()
    assert event.audit_label == "update"
    assert event.status == new_status
    assert event.audit_context.user.username == "editor"


def test_viewer_sees_the_order_read_only(seeded, login):
    order = order_with_items()
    page = login("viewer")

    page.goto(reverse("admin:shop_order_change", args=[order.pk]))

    expect(page.locator("#content h1")).to_have_text("View order")
    expect(page.locator("input[name='_save']")).to_have_count(0)
    expect(page.locator(".field-status .readonly")).to_have_text(order.get_status_display())
