"""The example shop's admin pages, through Django's test client."""

from __future__ import annotations

from io import StringIO

import pytest
from bs4 import BeautifulSoup
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from shop.models import Customer, DigitalProduct, Order, OrderItem, Product, Tag

pytestmark = pytest.mark.django_db

REGISTERED = (Customer, Tag, Product, DigitalProduct, Order, OrderItem)


@pytest.fixture
def seeded() -> None:
    call_command("seed", stdout=StringIO())


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def test_registers_the_shop_but_not_events_or_users():
    shop = {m for m in admin.site._registry if m._meta.app_label == "shop"}

    assert shop == set(REGISTERED)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m.__name__)
def test_admin_pages_render(seeded, client, model):
    client.login(username="admin", password="admin")
    obj = model.objects.order_by("pk").first()

    changelist = client.get(url(model, "changelist"), {"q": "a"})
    add = client.get(url(model, "add"))
    change = client.get(url(model, "change", obj.pk))

    assert (changelist.status_code, add.status_code, change.status_code) == (200, 200, 200)
    assert soup(change).select_one("#content h2").get_text(strip=True) == str(obj)


def test_order_change_page_shows_items_inline(seeded, client):
    client.login(username="admin", password="admin")
    order = Order.objects.filter(items__isnull=False).distinct().first()

    page = soup(client.get(url(Order, "change", order.pk)))

    rows = page.select("#items-group tr.form-row.has_original")
    assert len(rows) == order.items.count()


def test_product_tags_use_the_horizontal_filter(seeded, client):
    client.login(username="admin", password="admin")
    product = Product.objects.first()

    page = soup(client.get(url(Product, "change", product.pk)))

    assert "selectfilter" in page.select_one("select#id_tags")["class"]


@pytest.mark.parametrize("term", ["42", "#7", "Ada", "²", "99999999999999999999"])
def test_order_search_accepts_any_term(seeded, client, term):
    client.login(username="admin", password="admin")

    response = client.get(url(Order, "changelist"), {"q": term})

    assert response.status_code == 200


def test_order_search_finds_an_order_by_number(seeded, client):
    client.login(username="admin", password="admin")
    order = Order.objects.order_by("pk").last()

    page = soup(client.get(url(Order, "changelist"), {"q": f"#{order.pk}"}))

    links = [a.get_text() for a in page.select("#result_list th a")]
    assert str(order) in links


def test_viewer_can_view_but_not_change(seeded, client):
    client.login(username="viewer", password="viewer")
    order = Order.objects.first()

    assert client.get(url(Order, "changelist")).status_code == 200
    page = soup(client.get(url(Order, "change", order.pk)))
    assert page.select_one("#content h1").get_text(strip=True) == "View order"
    assert page.select("input[name=_save]") == []
    assert client.get(url(Order, "add")).status_code == 403
    assert client.post(url(Order, "delete", order.pk), {"post": "yes"}).status_code == 403
