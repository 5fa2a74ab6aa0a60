"""What a new user meets on each page: times to the second, names instead of keys,
messages instead of errors, plural forms, and reverts on the admin's record."""

import re

import pytest
from bs4 import BeautifulSoup
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

import audit_app
from audit_app.models import AuditEvent
from shop.models import Customer, Order, Product, Tag

pytestmark = pytest.mark.django_db

SECONDS = re.compile(r"\b\d\d:\d\d:\d\d\b")


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def order(editor):
    # Two requests: two change sets on the timeline.
    with audit_app.context(user=editor.pk, username="editor", request_id="first"):
        customer = Customer.objects.create(name="Ann", email="ann@example.org")
        order = Order.objects.create(customer=customer, notes="first")
    with audit_app.context(user=editor.pk, username="editor", request_id="second"):
        order.notes = "second"
        order.save()
    return order


def versions(obj) -> list[AuditEvent]:
    """The object's events, oldest first."""
    return list(AuditEvent.objects.tracks(obj).order_by("created_at", "event_id"))


def move_back(event: AuditEvent, seconds: int) -> None:
    """Date an event ``seconds`` earlier (two versions in different minutes)."""
    table = event.source_event_model._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # As the tables' owner may: history is append-only.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            f"UPDATE \"{table}\" SET audit_created_at = audit_created_at - %s * interval '1 second'"
            " WHERE audit_id = %s",
            [seconds, event.event_id],
        )
        # SET LOCAL lasts to the end of the test's transaction, not of this savepoint.
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")


# -- times ---------------------------------------------------------------------------------


def test_times_are_shown_to_the_second_with_the_whole_timestamp_on_hover(client, editor, order):
    client.force_login(editor)
    page = soup(client.get(reverse("admin:shop_order_history", args=[order.pk])))
    times = page.select("table.audit-timeline time.audit-time")
    assert len(times) == 2
    for time in times:
        assert SECONDS.search(time.text), time.text
        # The title has the microseconds and the time zone (Europe/Berlin here).
        assert re.search(r"\d\d:\d\d:\d\d\.\d{6} CE", time["title"]), time["title"]
    browser = soup(client.get(reverse("admin:audit_app_auditevent_changelist")))
    assert SECONDS.search(browser.select_one("td.audit-col-created_at time").text)


def test_compare_headers_name_each_version_by_time_and_author(client, editor, order):
    first, second = versions(order)
    move_back(first, 60)
    client.force_login(editor)
    response = client.get(
        reverse("admin:shop_order_audit_compare", args=[order.pk]),
        {"a": first.id, "b": second.id},
    )
    headers = [th.text for th in soup(response).select("table.audit-diff thead th")][1:]
    assert headers[0] != headers[1]
    assert all(SECONDS.search(h) and h.endswith(" by editor") for h in headers), headers


def test_compare_without_a_from_version_goes_back_with_a_message(client, editor, order):
    client.force_login(editor)
    url = reverse("admin:shop_order_audit_compare", args=[order.pk])
    for query in ({}, {"b": "current"}, {"a": "", "b": "current"}):
        response = client.get(url, query)
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:shop_order_history", args=[order.pk])
        timeline = client.get(response["Location"])
        assert messages_of(timeline) == [
            "Pick a version to compare from (the first column), then press Compare."
        ]


# -- the version page ------------------------------------------------------------------------


def test_version_page_has_the_change_forms_styles_and_labels(client, editor):
    with audit_app.context(user=editor.pk, username="editor"):
        product = Product.objects.create(sku="P-1", name="Lamp", price=3)
        product.tags.add(Tag.objects.create(name="light"))
    event = versions(product)[0]
    client.force_login(editor)
    page = soup(
        client.get(reverse("admin:shop_product_audit_version", args=[product.pk, event.id]))
    )
    styles = [link["href"] for link in page.select("link[rel=stylesheet]")]
    assert any(href.endswith("admin/css/forms.css") for href in styles)
    assert "change-form" in page.body["class"]
    labels = [label.text for label in page.select("fieldset .form-row label")]
    assert "Tags:" in labels  # the verbose name, capitalised, as the change form shows it
    assert "SKU:" in labels and "sku:" not in labels


# -- nothing to revert -------------------------------------------------------------------------


def test_the_version_the_object_is_now_offers_no_revert(client, editor, order):
    _first, newest = versions(order)
    client.force_login(editor)
    rows = soup(client.get(reverse("admin:shop_order_history", args=[order.pk]))).select(
        "table.audit-timeline > tbody > tr"
    )
    assert [bool(r.select(".audit-revert-button")) for r in rows] == [False, True]
    version = soup(
        client.get(reverse("admin:shop_order_audit_version", args=[order.pk, newest.id]))
    )
    assert not version.select(".audit-revert-button")
    assert version.select_one(".audit-matches-current")


def test_a_no_op_revert_is_a_message_never_a_400(client, editor, order):
    newest = versions(order)[-1]
    client.force_login(editor)
    url = reverse("admin:shop_order_audit_revert", args=[order.pk, newest.id])
    confirmation = client.post(url)
    assert confirmation.status_code == 200
    page = soup(confirmation)
    notice = page.select_one(".audit-nothing-to-do").text
    assert notice == f"Order “{order}” already matches this version; there is nothing to revert."
    assert not page.select("input[type=submit]")
    applied = client.post(url, {"confirm": "yes"})
    assert applied.status_code == 302
    assert messages_of(applied) == [notice]
    assert len(versions(order)) == 2


# -- names and words ---------------------------------------------------------------------------


def test_a_revert_shows_on_the_timeline_as_the_version_it_went_back_to(client, editor, order):
    first = versions(order)[0]
    move_back(first, 60)
    first = versions(order)[0]
    client.force_login(editor)
    response = client.post(
        reverse("admin:shop_order_audit_revert", args=[order.pk, first.id]),
        {"confirm": "yes"},
    )
    assert response.status_code == 302
    message = messages_of(response)[0]
    assert message.startswith(f"Order “{order}” was reverted to the version of ")
    assert message.endswith(" by editor.") and ".." not in message
    page = soup(client.get(reverse("admin:shop_order_history", args=[order.pk])))
    line = page.select_one("table.audit-timeline .audit-ctx-action")
    source_time = line.select_one("time")
    assert line.text.startswith("Reverted to the version of ") and line.text.endswith("by editor")
    assert source_time["datetime"] == timezone.localtime(first.created_at).isoformat()
    assert "OrderEvent" not in page.text  # no internal keys


def test_restore_page_and_message_use_the_objects_name(client, editor):
    with audit_app.context(user=editor.pk, username="editor"):
        customer = Customer.objects.create(name="Bea Broom", email="bea@example.org")
        customer.delete()
    deleted = AuditEvent.objects.across(Customer).deleted().get()
    client.force_login(editor)
    url = reverse("admin:shop_customer_audit_restore", args=[deleted.id])
    page = soup(client.post(url))
    assert page.select_one("h1").text == "Restore “Bea Broom”"
    response = client.post(url, {"confirm": "yes"})
    message = messages_of(response)[0]
    assert message.startswith("Customer “Bea Broom” was restored as it was when deleted on ")
    assert ".." not in message


# -- Recent actions ----------------------------------------------------------------------------


def test_reverts_and_restores_are_in_recent_actions_and_exports_are_not_changes(
    client, editor, order
):
    first = versions(order)[0]
    with audit_app.context(user=editor.pk, username="editor"):
        gone = Customer.objects.create(name="Cy", email="cy@example.org")
        gone.delete()
    deleted = AuditEvent.objects.across(Customer).deleted().get()
    client.force_login(editor)
    client.post(
        reverse("admin:shop_order_audit_revert", args=[order.pk, first.id]), {"confirm": "yes"}
    )
    client.post(reverse("admin:shop_customer_audit_restore", args=[deleted.id]), {"confirm": "yes"})
    client.get(reverse("admin:audit_app_auditevent_export", args=["csv"]))

    entries = {e.object_repr: e for e in LogEntry.objects.filter(user=editor)}
    revert_entry, restore_entry = entries[str(order)], entries["Cy"]
    assert revert_entry.action_flag == CHANGE and revert_entry.object_id == str(order.pk)
    assert revert_entry.get_change_message().startswith("Reverted to the version of ")
    assert restore_entry.action_flag == ADDITION
    assert restore_entry.get_change_message().startswith("Restored as it was when deleted on ")

    index = soup(client.get(reverse("admin:index")))
    items = index.select("#recent-actions-module li")

    def recent(text: str):
        (item,) = [li for li in items if text in li.get_text()]
        return set(item.get("class", []))

    assert recent(str(order)) == {"changelink"}
    assert recent("Cy") == {"addlink"}
    assert not {"addlink", "changelink", "deletelink"} & recent("Export of audit events")


def test_bulk_revert_is_recorded_per_object(client, editor, order):
    with audit_app.context(user=editor.pk, username="editor"):
        other = Order.objects.create(customer=order.customer, notes="a")
        other.notes = "b"
        other.save()
    keys = [versions(order)[0].id, versions(other)[0].id]
    client.force_login(editor)
    response = client.post(
        reverse("admin:audit_app_auditevent_changelist"),
        {"action": "revert_selected", ACTION_CHECKBOX_NAME: keys, "confirm": "yes"},
    )
    assert response.status_code == 302
    (message,) = messages_of(response)
    assert message.startswith("Reverted 2 objects to the selected versions: ")
    assert f"“{order}”" in message and f"“{other}”" in message
    entries = LogEntry.objects.filter(user=editor, action_flag=CHANGE)
    assert sorted(e.object_id for e in entries) == sorted([str(order.pk), str(other.pk)])


# -- plural forms ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2])
def test_bulk_revert_speaks_of_one_or_many(client, editor, count):
    orders = []
    with audit_app.context(user=editor.pk, username="editor"):
        customer = Customer.objects.create(name="Di", email="di@example.org")
        for i in range(count):
            obj = Order.objects.create(customer=customer, notes=f"n{i}")
            obj.notes = f"m{i}"
            obj.save()
            orders.append(obj)
    keys = [versions(o)[0].id for o in orders]
    client.force_login(editor)
    url = reverse("admin:audit_app_auditevent_changelist")
    page = soup(client.post(url, {"action": "revert_selected", ACTION_CHECKBOX_NAME: keys}))
    button = page.select_one("input[type=submit]")["value"]
    intro = page.select_one("#content-main > p").text
    if count == 1:
        assert button == "Yes, revert it"
        assert "all 1" not in intro and intro.startswith("The object below goes back")
    else:
        assert button == "Yes, revert all 2"
        assert "then all 2 are reverted" in intro
    response = client.post(
        url, {"action": "revert_selected", ACTION_CHECKBOX_NAME: keys, "confirm": "yes"}
    )
    expected = "Reverted 1 object to the selected version: " if count == 1 else "Reverted 2 objects"
    assert messages_of(response)[0].startswith(expected)


def test_first_events_say_how_many_fields_they_recorded(client, editor):
    with audit_app.context(user=editor.pk, username="editor"):
        tag = Tag.objects.create(name="one")
    client.force_login(editor)
    page = soup(client.get(reverse("admin:shop_tag_history", args=[tag.pk])))
    assert page.select_one(".audit-changes summary").text == "1 field recorded"
