"""The timeline of an object with followed rows: one entry per change set."""

from decimal import Decimal

import pytest
from bs4 import BeautifulSoup
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import audit_app
from audit_app.models import AuditEvent
from shop.models import Customer, Order, OrderItem, Product, Tag

pytestmark = pytest.mark.django_db


def soup(response):
    return BeautifulSoup(response.content, "html.parser")


def timeline(client, obj):
    url = reverse(f"admin:shop_{obj._meta.model_name}_history", args=[obj.pk])
    response = client.get(url)
    assert response.status_code == 200
    return soup(response).select("table.audit-timeline > tbody > tr")


def relation_text(row, name):
    found = row.select_one(f'.audit-relation[data-relation="{name}"]')
    return found.get_text(" ", strip=True) if found else None


@pytest.fixture
def products():
    return [
        Product.objects.create(sku=f"p{n}", name=name, price=Decimal("1"))
        for n, name in enumerate(["Widget", "Gadget", "Manual", "Gizmo"])
    ]


@pytest.fixture
def order(products):
    with audit_app.context(request_id="setup"):
        order = Order.objects.create(customer=Customer.objects.create(name="A", email="a@x.org"))
        OrderItem.objects.create(order=order, product=products[1], quantity=1)
        OrderItem.objects.create(order=order, product=products[2], quantity=1)
    return order


def change_form_data(order, items, *, add=(), delete=()):
    """The POST of the order's change form with its inline items."""
    data = {
        "customer": order.customer_id,
        "status": "paid",
        "total": "0",
        "notes": "",
        "items-TOTAL_FORMS": str(len(items) + len(add)),
        "items-INITIAL_FORMS": str(len(items)),
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "1000",
    }
    for n, (item, quantity) in enumerate(items):
        data.update(
            {
                f"items-{n}-id": item.pk,
                f"items-{n}-order": order.pk,
                f"items-{n}-product": item.product_id,
                f"items-{n}-quantity": quantity,
            }
        )
        if item in delete:
            data[f"items-{n}-DELETE"] = "on"
    for n, (product, quantity) in enumerate(add, start=len(items)):
        data.update(
            {
                f"items-{n}-order": order.pk,
                f"items-{n}-product": product.pk,
                f"items-{n}-quantity": quantity,
            }
        )
    return data


def test_one_admin_save_with_inlines_is_one_entry(client, editor, order, products):
    gadget, manual = order.items.order_by("pk")
    client.force_login(editor)
    data = change_form_data(
        order, [(gadget, 3), (manual, 1)], add=[(products[0], 2)], delete=[manual]
    )
    response = client.post(reverse("admin:shop_order_change", args=[order.pk]), data)
    assert response.status_code == 302, response.content[:2000]
    rows = timeline(client, order)
    assert len(rows) == 2  # the save, and the order's creation with its first items
    save = rows[0]
    assert save.select_one("tr[data-field=status] .audit-new").text.strip() == "Paid"
    assert relation_text(save, "items") == (
        "Items: added 2 x Widget ; 3 x Gadget : quantity 1 → 3; removed 1 x Manual ."
    )
    assert relation_text(rows[1], "items") == "Items: added 1 x Gadget , 1 x Manual ."


def test_tag_links_are_summarised_by_tag(client, editor, products):
    product = products[0]
    new, sale = Tag.objects.create(name="new"), Tag.objects.create(name="sale")
    product.tags.add(new)
    with audit_app.context(request_id="retag"):
        product.tags.remove(new)
        product.tags.add(sale)
    client.force_login(editor)
    rows = timeline(client, product)
    assert relation_text(rows[0], "tags") == "Tags: added sale ; removed new ."


def test_values_are_escaped(client, editor, order, products):
    products[0].name = "<b>bold</b>"
    products[0].save()
    with audit_app.context(request_id="escape"):
        OrderItem.objects.create(order=order, product=products[0])
    client.force_login(editor)
    html = client.get(reverse("admin:shop_order_history", args=[order.pk])).content.decode()
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_viewer_without_item_permission_sees_counts_not_values(client, viewer, order):
    viewer.user_permissions.remove(Permission.objects.get(codename="view_orderitem"))
    with audit_app.context(request_id="bump"):
        OrderItem.objects.filter(order=order).update(quantity=7)
        OrderItem.objects.create(order=order, product=Product.objects.get(name="Widget"))
    client.force_login(viewer)
    rows = timeline(client, order)
    assert relation_text(rows[0], "items") == "Items: 1 added; 2 changed."
    assert rows[0].select_one(".audit-relation-hidden")
    assert "Gadget" not in str(rows[0]) and "7" not in relation_text(rows[0], "items")


def test_entry_of_rows_only_has_no_version_tools(client, editor, order):
    with audit_app.context(request_id="rows only"):
        OrderItem.objects.filter(order=order).update(quantity=5)
    client.force_login(editor)
    rows = timeline(client, order)
    assert not rows[0].select(".audit-view-version, input[type=radio]")
    assert rows[1].select(".audit-view-version")


def _history_queries(client, order):
    url = reverse("admin:shop_order_history", args=[order.pk])
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_timeline_queries_do_not_grow_with_rows(client, editor, products):
    def order_with(n):
        with audit_app.context(request_id=f"create {n}"):
            order = Order.objects.create(
                customer=Customer.objects.create(name=f"c{n}", email=f"c{n}@x.org")
            )
            OrderItem.objects.bulk_create(
                OrderItem(order=order, product=products[i % 4]) for i in range(n)
            )
        with audit_app.context(request_id=f"edit {n}"):
            OrderItem.objects.filter(order=order).update(quantity=2)
            OrderItem.objects.filter(order=order)[:1].get().delete()
        return order

    client.force_login(editor)
    small, big = order_with(2), order_with(30)
    _history_queries(client, small)  # warm caches (content types, permissions)
    assert _history_queries(client, small) == _history_queries(client, big)


def test_filters_select_whole_change_sets(client, editor, order):
    client.force_login(editor)
    url = reverse("admin:shop_order_history", args=[order.pk])
    rows = soup(client.get(url, {"action": "created"})).select("table.audit-timeline > tbody > tr")
    assert len(rows) == 1 and relation_text(rows[0], "items").startswith("Items: added")


@pytest.fixture
def deleted_order(order):
    with audit_app.context(request_id="delete"):
        order.delete()
    return AuditEvent.objects.across(Order).deleted().get()


def restore_url(event):
    return reverse("admin:shop_order_audit_restore", args=[event.id])


def test_restore_confirmation_lists_the_items_and_brings_them_back(client, editor, deleted_order):
    client.force_login(editor)
    page = soup(client.post(restore_url(deleted_order)))
    rows = [li.get_text(" ", strip=True) for li in page.select("li.audit-cascade-row")]
    assert rows == ["Items: 1 x Gadget", "Items: 1 x Manual"]
    response = client.post(restore_url(deleted_order), {"confirm": "yes", "reason": "oops"})
    assert response.status_code == 302
    order = Order.objects.get(pk=deleted_order.obj_id)
    assert sorted(order.items.values_list("product__name", flat=True)) == ["Gadget", "Manual"]


def test_restore_needs_add_permission_on_the_items(client, editor, deleted_order):
    editor.user_permissions.remove(Permission.objects.get(codename="add_orderitem"))
    client.force_login(editor)
    page = soup(client.post(restore_url(deleted_order)))
    assert any("may not add" in p.text for p in page.select(".audit-problem"))
    assert client.post(restore_url(deleted_order), {"confirm": "yes"}).status_code == 403
    assert not Order.objects.filter(pk=deleted_order.obj_id).exists()


def test_restore_with_a_gone_product_is_refused_and_writes_nothing(client, editor, deleted_order):
    Product.objects.filter(name="Manual").delete()
    client.force_login(editor)
    page = soup(client.post(restore_url(deleted_order)))
    assert any("no longer exists" in p.text for p in page.select(".audit-problem"))
    response = client.post(restore_url(deleted_order), {"confirm": "yes"})
    assert response.status_code == 400
    assert not Order.objects.filter(pk=deleted_order.obj_id).exists()
    assert not OrderItem.objects.exists()


@pytest.fixture
def saved_order(client, editor, order, products):
    """The order after the editor's one save: status, a quantity, an added and a removed item."""
    gadget, manual = order.items.order_by("pk")
    client.force_login(editor)
    data = change_form_data(
        order, [(gadget, 3), (manual, 1)], add=[(products[0], 2)], delete=[manual]
    )
    assert client.post(reverse("admin:shop_order_change", args=[order.pk]), data).status_code == 302
    return order


def items_of(order):
    return sorted(order.items.values_list("product__name", "quantity"))


def revert_form(client, order):
    """The revert button of the creation's timeline entry, and its confirmation page."""
    creation = timeline(client, order)[1]
    url = creation.select_one("form.audit-inline-form")["action"]
    return url, soup(client.post(url))


def test_revert_of_a_change_set_lists_every_row_and_restores_them(client, saved_order):
    url, page = revert_form(client, saved_order)
    rows = sorted(li.get_text(" ", strip=True) for li in page.select("li.audit-cascade-row"))
    assert rows == [
        "Items: 1 x Manual restored",
        "Items: 2 x Widget deleted",
        "Items: 3 x Gadget changed: quantity 3 → 1",
    ]
    expected = page.select_one("input[name=expected_changeset]")["value"]
    fields = [i["value"] for i in page.select("input[name=fields]")]
    response = client.post(
        url, {"confirm": "yes", "expected_changeset": expected, "fields": fields, "reason": "no"}
    )
    assert response.status_code == 302
    saved_order.refresh_from_db()
    assert saved_order.status == "new"
    assert items_of(saved_order) == [("Gadget", 1), ("Manual", 1)]
    latest = timeline(client, saved_order)[0]
    assert latest.select_one(".audit-action").text == "reverted"


def test_revert_refused_when_a_row_changed_since_the_page_was_shown(client, saved_order):
    url, page = revert_form(client, saved_order)
    expected = page.select_one("input[name=expected_changeset]")["value"]
    OrderItem.objects.filter(order=saved_order).update(quantity=9)
    response = client.post(url, {"confirm": "yes", "expected_changeset": expected})
    assert response.status_code == 409
    assert items_of(saved_order) == [("Gadget", 9), ("Widget", 9)]


def test_revert_needs_delete_permission_on_rows_it_deletes(client, editor, saved_order):
    editor.user_permissions.remove(Permission.objects.get(codename="delete_orderitem"))
    url, page = revert_form(client, saved_order)
    assert any("may not delete" in p.text for p in page.select(".audit-problem"))
    assert client.post(url, {"confirm": "yes"}).status_code == 403
    assert items_of(saved_order) == [("Gadget", 3), ("Widget", 2)]


def test_an_items_event_is_not_a_version_of_the_order(client, editor, order):
    item_event = AuditEvent.objects.across(OrderItem).filter(label="insert").first()
    client.force_login(editor)
    url = reverse("admin:shop_order_audit_version", args=[order.pk, item_event.id])
    assert client.get(url).status_code == 404


def test_revert_to_an_entry_of_rows_only(client, editor, order):
    with audit_app.context(request_id="rows only"):
        OrderItem.objects.filter(order=order).update(quantity=5)
    with audit_app.context(request_id="later"):
        order.status = "paid"
        order.save()
        OrderItem.objects.filter(order=order).update(quantity=6)
    client.force_login(editor)
    rows_only = timeline(client, order)[1]
    assert not rows_only.select(".audit-view-version")
    url = rows_only.select_one("form.audit-inline-form")["action"]
    page = soup(client.post(url))
    assert len(page.select("li.audit-cascade-row")) == 2
    assert [r["data-field"] for r in page.select("table.audit-revert-diff tbody tr")] == ["status"]
    expected = page.select_one("input[name=expected_changeset]")["value"]
    response = client.post(url, {"confirm": "yes", "expected_changeset": expected})
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == "new" and set(order.items.values_list("quantity", flat=True)) == {5}
