"""AuditEvent: one stream over every event table, filters pushed into each branch."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import audit_app
from audit_app.event_sql import MASKED
from audit_app.models import AuditEvent
from audit_app.registry import event_models
from shop.models import Customer, DigitalProduct, Order, OrderItem, Product
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(django_user_model, layout):
    ann = django_user_model.objects.create_user("ann")
    bob = django_user_model.objects.create_user("bob")
    with audit_app.context(user=ann.pk, username="ann"):
        customer = Customer.objects.create(name="C", email="c@example.org", api_token="t1")
        order = Order.objects.create(customer=customer, total="10.50")
    with audit_app.context(user=bob.pk, username="bob", request_id="r-1"):
        order.status = "paid"
        order.total = "12.00"
        order.save()
        customer.api_token = "t2"
        customer.save()
    return {"ann": ann, "bob": bob, "customer": customer, "order": order}


def test_stream_newest_first_with_data_and_diff(shop):
    events = list(AuditEvent.objects.exclude(obj_model="shop.StaffUser"))
    assert [(e.obj_model, e.label) for e in events] == [
        ("shop.Customer", "update"),
        ("shop.Order", "update"),
        ("shop.Order", "insert"),
        ("shop.Customer", "insert"),
    ]
    order_update = events[1]
    assert order_update.event_model == "shop.OrderEvent"
    assert order_update.obj_id == str(shop["order"].pk)
    assert order_update.data["status"] == "paid" and order_update.data["total"] == "12.00"
    assert order_update.data["customer"] == shop["customer"].pk
    assert order_update.diff == {"status": ["new", "paid"], "total": ["10.50", "12.00"]}
    assert events[2].diff is None  # the first event of an object has no diff
    assert order_update.user == shop["bob"] and order_update.username == "bob"
    assert order_update.action == "changed" and events[2].action == "created"


def test_masked_values_never_come_out(shop):
    update, insert = AuditEvent.objects.tracks(shop["customer"])
    assert update.data["api_token"] == MASKED
    assert update.diff == {"api_token": [MASKED, MASKED]}
    assert "t1" not in str(insert.data) and "t2" not in str(update.data)


def test_tracks_pushes_a_typed_key_filter_into_the_branch(shop):
    with CaptureQueriesContext(connection) as ctx:
        events = list(AuditEvent.objects.tracks(shop["order"]).without_diffs())
    assert [e.label for e in events] == ["update", "insert"]
    (query,) = ctx.captured_queries
    assert 'FROM "shop_orderevent" AS e WHERE (e."id" = ' in query["sql"]
    assert "shop_customerevent" not in query["sql"]


def test_tracks_a_child_includes_its_parent_table():
    d = DigitalProduct.objects.create(sku="d", name="E", price=1, download_url="https://x.org")
    events = list(AuditEvent.objects.tracks(d))
    assert sorted(e.event_model for e in events) == [
        "shop.DigitalProductEvent",
        "shop.ProductEvent",
    ]


def test_across_and_filters(shop):
    assert {e.obj_model for e in AuditEvent.objects.across(Order)} == {"shop.Order"}
    assert {e.obj_model for e in AuditEvent.objects.across("shop.Customer")} == {"shop.Customer"}
    assert (
        AuditEvent.objects.filter(label="insert").exclude(obj_model="shop.StaffUser").count() == 2
    )
    assert AuditEvent.objects.filter(obj_model="shop.Order", label="update").count() == 1
    assert AuditEvent.objects.filter(context__metadata__request_id="r-1").count() == 2


def test_by_user(shop):
    assert {e.username for e in AuditEvent.objects.by_user(shop["bob"])} == {"bob"}
    assert AuditEvent.objects.by_user(shop["ann"].pk).count() == 2


def test_references(shop):
    product = Product.objects.create(sku="p", name="P", price=1)
    OrderItem.objects.create(order=shop["order"], product=product, quantity=2)
    refs = list(AuditEvent.objects.references(shop["customer"]))
    assert {e.obj_model for e in refs} == {"shop.Order"}
    assert {e.obj_model for e in AuditEvent.objects.references(product)} == {"shop.OrderItem"}


def test_diff_only_for_the_page_one_query_per_table(shop):
    with CaptureQueriesContext(connection) as ctx:
        page = list(AuditEvent.objects.all()[:3])
    assert len(page) == 3
    # The page query plus one previous-version query per event table on the page.
    assert len(ctx.captured_queries) == 1 + len({e.event_model for e in page})


def test_no_count_star_in_estimated_count(shop, settings):
    # Exact counts off: only estimates, as for a history far above the limit (small or
    # unanalyzed histories are counted: tests/test_counting.py).
    settings.AUDIT_EXACT_COUNT_LIMIT = 0
    with CaptureQueriesContext(connection) as ctx:
        estimate = AuditEvent.objects.filter(label="insert").estimated_count()
    assert estimate >= 1
    assert all("COUNT(" not in q["sql"].upper() for q in ctx.captured_queries)


def test_get_by_event_id_and_empty_scope(shop):
    event = (
        AuditEvent.objects.across(Order)
        .filter(event_id=shop["order"].audit_events.first().pk)
        .get()
    )
    assert event.label == "insert"
    assert list(AuditEvent.objects.across(Order).across(Customer)) == []


def test_values_and_event_model_instances(shop):
    Widget.objects.create(name="w")
    rows = list(AuditEvent.objects.across(Widget).values("label", "obj_model"))
    assert rows == [{"label": "insert", "obj_model": "trackapp.Widget"}]


def test_by_user_merges_the_per_table_user_indexes(shop):
    """The user filter reaches every event table, where the (user, created_at, id)
    index returns that user's events newest first: a page costs a page, however rare
    the user (filtering the joined context instead cost 126 ms at 10M events)."""
    qs = AuditEvent.objects.by_user(shop["bob"])[:50]
    statement, params = qs.query.get_compiler("default").as_sql()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + statement, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # Ties on the time are sorted on the page only (Incremental Sort), never a table.
    assert "Merge Append" in plan and not re.search(r"(^|->  )Sort  ", plan, re.M)
    # Pushed into every event table's scan, no join with the context table.
    assert plan.count("audit_user_id = ") >= len(event_models())
    assert "Index Cond: (audit_user_id = " in plan and "audit_app_context" not in plan


@pytest.mark.usefixtures("layout")
def test_newest_page_merges_the_per_table_indexes():
    """No WHERE filler in unfiltered branches: each table's (created_at, id) index is
    merged, so a page reads a page (a regression at 400k events: 1.2 s instead of 3 ms)."""
    qs = AuditEvent.objects.all()[:50]
    statement, params = qs.query.get_compiler("default").as_sql()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + statement, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Merge Append" in plan and "Sort  " not in plan
