"""Change sets in a real browser: one save of an order with its inline items is one
timeline entry; reverting it brings the order and its items back; a deleted order is
restored with its items."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

import audit_app
from shop.models import Customer, Order, OrderItem, Product

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def order() -> Order:
    products = {
        name: Product.objects.create(sku=name.lower(), name=name, price=Decimal("2"))
        for name in ("Widget", "Gadget", "Manual")
    }
    with audit_app.context(request_id="placed"):
        order = Order.objects.create(customer=Customer.objects.create(name="Ann", email="a@x.org"))
        OrderItem.objects.create(order=order, product=products["Gadget"], quantity=1)
        OrderItem.objects.create(order=order, product=products["Manual"], quantity=1)
    return order


def items_of(order: Order) -> list[tuple[str, int]]:
    return sorted(order.items.values_list("product__name", "quantity"))


def edit_in_one_save(page: Page, order: Order) -> None:
    """Status, a quantity, an item added and one removed, then Save."""
    page.goto(reverse("admin:shop_order_change", args=[order.pk]))
    page.locator("#id_status").select_option("paid")
    page.locator("#id_items-0-quantity").fill("3")
    page.locator("#id_items-1-DELETE").check()
    page.locator("#items-group .add-row a").click()
    page.locator("#items-2 .select2-selection").click()
    page.locator(".select2-search__field").fill("Widget")
    page.locator(".select2-results__option", has_text="Widget").click()
    page.locator("#id_items-2-quantity").fill("2")
    page.locator("input[name='_save']").click()
    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")


def test_one_save_is_one_entry_and_its_revert_restores_order_and_items(login, editor, order):
    page = login("editor")
    edit_in_one_save(page, order)
    assert items_of(order) == [("Gadget", 3), ("Widget", 2)]

    page.goto(reverse("admin:shop_order_history", args=[order.pk]))
    rows = page.locator("table.audit-timeline > tbody > tr")
    expect(rows).to_have_count(2)
    items = rows.first.locator('.audit-relation[data-relation="items"]')
    expect(items).to_contain_text("added 2 x Widget")
    expect(items).to_contain_text("3 x Gadget: quantity 1 → 3")
    expect(items).to_contain_text("removed 1 x Manual")

    rows.nth(1).get_by_role("button", name="Revert to this version").click()
    expect(page.locator("li.audit-cascade-row")).to_have_count(3)
    page.get_by_role("button", name="Yes, revert").click()
    expect(page.locator(".messagelist .success")).to_contain_text("was reverted")
    order.refresh_from_db()
    assert order.status == "new"
    assert items_of(order) == [("Gadget", 1), ("Manual", 1)]


def test_deleted_order_comes_back_with_its_items(login, editor, order):
    pk, before = order.pk, items_of(order)
    page = login("editor")
    page.goto(reverse("admin:shop_order_delete", args=[pk]))
    page.get_by_role("button", name="Yes, I\u2019m sure").click()
    expect(page.locator(".messagelist .success")).to_contain_text("was deleted successfully")
    assert not OrderItem.objects.exists()

    page.goto(reverse("admin:shop_order_audit_deleted"))
    page.get_by_role("button", name="Restore").first.click()
    expect(page.locator("li.audit-cascade-row")).to_have_count(2)
    page.get_by_role("button", name="Yes, restore it").click()
    expect(page.locator(".messagelist .success")).to_contain_text("was restored")
    assert items_of(Order.objects.get(pk=pk)) == before
