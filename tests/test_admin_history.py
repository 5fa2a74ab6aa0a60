"""Per-object history pages in the admin: timeline, version, compare, revert, restore."""

import pytest
from bs4 import BeautifulSoup
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import audit_app
from audit_app.models import AuditEvent
from shop.models import Customer, Order, Product

pytestmark = pytest.mark.django_db


def soup(response):
    return BeautifulSoup(response.content, "html.parser")


@pytest.fixture
def order(editor):
    # Two requests: the timeline shows one entry per change set.
    with audit_app.context(user=editor.pk, username="editor", request_id="rq-0"):
        customer = Customer.objects.create(name="Ann", email="ann@example.org")
        order = Order.objects.create(customer=customer, notes="first notes")
    with audit_app.context(user=editor.pk, username="editor", request_id="rq-1"):
        order.status = "paid"
        order.notes = "second notes"
        order.save()
    return order


def history_url(order):
    return reverse("admin:shop_order_history", args=[order.pk])


def test_timeline_shows_events_newest_first_with_diffs(client, editor, order):
    client.force_login(editor)
    response = client.get(history_url(order))
    assert response.status_code == 200
    page = soup(response)
    rows = page.select("table.audit-timeline > tbody > tr")
    assert [r.select_one(".audit-action").text for r in rows] == ["changed", "created"]
    first = rows[0]
    assert first.select_one("tr[data-field=status] .audit-old").text.strip() == "New"
    assert first.select_one("tr[data-field=status] .audit-new").text.strip() == "Paid"
    assert "rq-1" in first.select_one(".audit-ctx-request").text
    # The newest version is the object as it is: nothing to revert to.
    assert not first.select("form button.audit-revert-button")
    # The customer FK links to the customer's admin page.
    created = rows[1]
    assert created.select("form button.audit-revert-button")
    link = created.select_one("tr[data-field=customer] a")
    assert link["href"] == reverse("admin:shop_customer_change", args=[order.customer_id])


def test_timeline_never_counts_and_does_not_query_per_row(client, editor, order):
    client.force_login(editor)
    with CaptureQueriesContext(connection) as ctx:
        client.get(history_url(order))
    assert not [q for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    few = len(ctx.captured_queries)
    with audit_app.context(user=editor.pk, username="editor"):
        for note in range(10):
            order.notes = f"note {note}"
            order.save()
    with CaptureQueriesContext(connection) as ctx:
        client.get(history_url(order))
    assert len(ctx.captured_queries) == few


def test_timeline_filters(client, editor, order):
    client.force_login(editor)
    page = soup(client.get(history_url(order), {"action": "created"}))
    assert [
        r.select_one(".audit-action").text for r in page.select("table.audit-timeline > tbody > tr")
    ] == ["created"]
    page = soup(client.get(history_url(order), {"field": "notes"}))
    assert len(page.select("table.audit-timeline > tbody > tr .audit-action")) == 1
    bad = client.get(history_url(order), {"created_at_after": "not-a-date"})
    assert bad.status_code == 400


def test_viewer_sees_history_but_no_revert_button(client, viewer, order):
    client.force_login(viewer)
    response = client.get(history_url(order))
    assert response.status_code == 200
    assert not soup(response).select(".audit-revert-button")
    event = AuditEvent.objects.tracks(order).last()
    revert = reverse("admin:shop_order_audit_revert", args=[order.pk, event.id])
    assert client.post(revert).status_code == 403


def test_unknown_or_forbidden_objects_are_404(client, django_user_model, order):
    staff = django_user_model.objects.create_user("nobody", is_staff=True)
    client.force_login(staff)
    assert client.get(history_url(order)).status_code in (403, 404)
    admin = django_user_model.objects.create_superuser("root")
    client.force_login(admin)
    assert client.get(reverse("admin:shop_order_history", args=[999999])).status_code == 404
    assert client.get(reverse("admin:shop_order_history", args=["x'y"])).status_code == 404
    version = reverse("admin:shop_order_audit_version", args=[order.pk, "shop.customerevent:1"])
    assert client.get(version).status_code == 404
    assert client.get(history_url(order), {"page": "99999"}).status_code in (200, 404)
    assert client.get(history_url(order), {"page": "-1"}).status_code in (200, 404)
    assert client.get(history_url(order), {"page": "abc"}).status_code in (200, 404)


def test_version_and_compare(client, editor, order):
    client.force_login(editor)
    first = AuditEvent.objects.tracks(order).last()
    page = soup(client.get(reverse("admin:shop_order_audit_version", args=[order.pk, first.id])))
    assert "first notes" in page.select_one(".field-notes .readonly").text
    assert page.select_one(".field-status .readonly").text.strip() == "New"
    compare = client.get(
        reverse("admin:shop_order_audit_compare", args=[order.pk]), {"a": first.id, "b": "current"}
    )
    rows = soup(compare).select("table.audit-diff tbody tr")
    assert {r["data-field"] for r in rows} == {"status", "notes"}


def test_revert_flow_get_refused_post_confirms_then_applies(client, editor, order):
    client.force_login(editor)
    first = AuditEvent.objects.tracks(order).last()
    url = reverse("admin:shop_order_audit_revert", args=[order.pk, first.id])
    assert client.get(url).status_code == 405
    confirm = client.post(url)
    assert confirm.status_code == 200
    page = soup(confirm)
    assert {r["data-field"] for r in page.select("table.audit-revert-diff tbody tr")} == {
        "status",
        "notes",
    }
    order.refresh_from_db()
    assert order.status == "paid"  # nothing written yet
    expected = page.select_one("input[name=expected_event_id]")["value"]
    done = client.post(
        url,
        {
            "confirm": "yes",
            "expected_event_id": expected,
            "fields": ["status"],
            "reason": "customer asked",
        },
    )
    assert done.status_code == 302 and done["Location"] == reverse(
        "admin:shop_order_change", args=[order.pk]
    )
    order.refresh_from_db()
    assert (order.status, order.notes) == ("new", "second notes")
    latest = AuditEvent.objects.tracks(order).first()
    assert (latest.action, latest.metadata["reason"], latest.username) == (
        "reverted",
        "customer asked",
        "editor",
    )


def test_revert_conflict_is_shown_not_applied(client, editor, order):
    client.force_login(editor)
    first = AuditEvent.objects.tracks(order).last()
    url = reverse("admin:shop_order_audit_revert", args=[order.pk, first.id])
    expected = soup(client.post(url)).select_one("input[name=expected_event_id]")["value"]
    Order.objects.filter(pk=order.pk).update(status="shipped")
    response = client.post(url, {"confirm": "yes", "expected_event_id": expected})
    assert response.status_code == 409
    assert "changed since you looked" in soup(response).select_one(".audit-error").text
    order.refresh_from_db()
    assert order.status == "shipped"


def test_revert_requires_csrf(editor, order):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    first = AuditEvent.objects.tracks(order).last()
    url = reverse("admin:shop_order_audit_revert", args=[order.pk, first.id])
    assert client.post(url, {"confirm": "yes"}).status_code == 403


@pytest.mark.usefixtures("layout")
def test_deleted_list_and_restore(client, editor):
    with audit_app.context(user=editor.pk, username="editor"):
        product = Product.objects.create(sku="gone-1", name="Gone", price=3)
        pk = product.pk
        product.delete()
    client.force_login(editor)
    changelist = soup(client.get(reverse("admin:shop_product_changelist")))
    deleted_link = changelist.select_one("a.audit-deleted-link")["href"]
    page = soup(client.get(deleted_link))
    rows = page.select("table.audit-deleted tbody tr")
    assert len(rows) == 1 and "Gone" in rows[0].text
    restore_url = rows[0].select_one("form")["action"]
    confirm = client.post(restore_url)
    assert confirm.status_code == 200 and "Yes, restore it" in confirm.content.decode()
    done = client.post(restore_url, {"confirm": "yes"})
    assert done.status_code == 302
    assert Product.objects.get(pk=pk).name == "Gone"
    assert not soup(client.get(deleted_link)).select("table.audit-deleted tbody tr form")


def test_escaping_of_hostile_values(client, editor):
    payload = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    with audit_app.context(user=editor.pk, username=payload):
        c = Customer.objects.create(name="x", email="x@example.org")
        c.name = payload
        c.save()
    client.force_login(editor)
    html = client.get(reverse("admin:shop_customer_history", args=[c.pk])).content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_every_field_kind_renders(client, editor):
    from decimal import Decimal

    with audit_app.context(user=editor.pk, username="editor"):
        p = Product.objects.create(
            sku="k1",
            name="Kinds",
            price=Decimal("1.50"),
            attributes={"a": 1},
            description="one two three",
        )
    # A later request: its own entry on the timeline, diffed against the creation.
    with audit_app.context(user=editor.pk, username="editor", request_id="kinds-2"):
        p.price = Decimal("2.25")
        p.attributes = {"a": 2, "b": True}
        p.description = "one 2 three"
        p.category = "games"
        p.active = False
        p.save()
        c = Customer.objects.create(name="m", email="m@example.org", api_token="secret-token-1")
    with audit_app.context(user=editor.pk, username="editor", request_id="kinds-3"):
        c.api_token = "secret-token-2"
        c.save()
    client.force_login(editor)
    row = soup(client.get(reverse("admin:shop_product_history", args=[p.pk]))).select(
        "table.audit-timeline > tbody > tr"
    )[0]
    assert row.select_one("tr[data-field=category] .audit-new").text.strip() == "Games"
    assert row.select_one("tr[data-field=price] .audit-old").text.strip() == "1.50"
    assert row.select_one("tr[data-field=active] .audit-new").text.strip() == "No"
    assert row.select_one("tr[data-field=description] del").text == "two"
    assert row.select_one("tr[data-field=description] ins").text == "2"
    json_items = [li.get_text(" ", strip=True) for li in row.select("tr[data-field=attributes] li")]
    assert json_items == ["a 1 → 2", "b added True"]
    html = client.get(reverse("admin:shop_customer_history", args=[c.pk])).content.decode()
    masked = soup(client.get(reverse("admin:shop_customer_history", args=[c.pk]))).select_one(
        "tr[data-field=api_token] .audit-masked"
    )
    assert masked.text == "Changed (value hidden)"
    assert "secret-token" not in html


@pytest.mark.parametrize("case", ["missing_related", "unique", "validation", "nothing"])
def test_revert_errors_are_shown_on_the_confirmation_page(client, editor, case):
    # Written without a context: each change is a change set of its own, so the oldest
    # event is a version of its own to revert to.
    if case == "missing_related":
        old = Customer.objects.create(name="Old", email="old@example.org")
        obj = Order.objects.create(customer=old)
        obj.customer = Customer.objects.create(name="New", email="new@example.org")
        obj.save()
        old_pk = old.pk
        old.delete()
        expected_text = f"Customer {old_pk} no longer exists"
    elif case == "unique":
        obj = Product.objects.create(sku="U-1", name="p", price=1)
        obj.sku = "U-2"
        obj.save()
        Product.objects.create(sku="U-1", name="q", price=1)
        expected_text = "sku"
    elif case == "validation":
        obj = Product.objects.create(sku="V-1", name="p", price=1)
        Product.objects.filter(pk=obj.pk).update(price=-1)
        obj.refresh_from_db()
        obj.price = 5
        obj.save()
        expected_text = "passes validation"
    else:
        obj = Product.objects.create(sku="N-1", name="p", price=1)
        expected_text = "already matches"
    model = type(obj)._meta.model_name
    events = list(AuditEvent.objects.tracks(obj))
    target = events[-1] if case != "validation" else events[1]
    client.force_login(editor)
    url = reverse(f"admin:shop_{model}_audit_revert", args=[obj.pk, target.id])
    preview = soup(client.post(url))
    assert expected_text in " ".join(p.text for p in preview.select(".audit-problem"))
    response = client.post(url, {"confirm": "yes"})
    assert AuditEvent.objects.tracks(obj).count() == len(events)
    if case == "nothing":
        # Not an error: back to the timeline with a message naming the object.
        assert response.status_code == 302
        messages = [str(m) for m in get_messages(response.wsgi_request)]
        assert messages == [
            f"Product “{obj}” already matches this version; there is nothing to revert."
        ]
        assert not preview.select("input[type=submit]")  # nothing to confirm
        return
    assert response.status_code == 400
    page = soup(response)
    assert expected_text in page.select_one(".audit-error").text
    # Shown once: the error at the top is not repeated among the problems.
    assert expected_text not in " ".join(p.text for p in page.select(".audit-problem"))


def test_permission_matrix_of_history_pages(client, django_user_model, editor, viewer, order):
    superuser = django_user_model.objects.create_superuser("root")
    no_perms = django_user_model.objects.create_user("staff", is_staff=True)
    first = AuditEvent.objects.tracks(order).last()
    pages = {
        "history": reverse("admin:shop_order_history", args=[order.pk]),
        "version": reverse("admin:shop_order_audit_version", args=[order.pk, first.id]),
        "compare": reverse("admin:shop_order_audit_compare", args=[order.pk]) + f"?a={first.id}",
        "deleted": reverse("admin:shop_order_audit_deleted"),
    }
    expected = {
        superuser: {"history": 200, "version": 200, "compare": 200, "deleted": 200, "revert": 200},
        editor: {"history": 200, "version": 200, "compare": 200, "deleted": 200, "revert": 200},
        viewer: {"history": 200, "version": 200, "compare": 200, "deleted": 200, "revert": 403},
        no_perms: {"history": 404, "version": 404, "compare": 404, "deleted": 403, "revert": 404},
    }
    for user, statuses in expected.items():
        client.force_login(user)
        seen = {name: client.get(url).status_code for name, url in pages.items()}
        seen["revert"] = client.post(
            reverse("admin:shop_order_audit_revert", args=[order.pk, first.id])
        ).status_code
        assert seen == statuses, user.username
    client.logout()
    assert client.get(pages["history"]).status_code == 302  # to the login page
