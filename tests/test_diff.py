"""The diff engine: structured changes for every kind of field."""

from decimal import Decimal

import pytest
from django.utils import timezone

import audit_app
from audit_app import diff
from audit_app.models import AuditEvent
from shop.models import Customer, Order, Product

pytestmark = pytest.mark.django_db


def changes_of(obj):
    event = AuditEvent.objects.tracks(obj).first()
    return {c.name: c for c in diff.event_changes(event)}


def test_choices_are_shown_by_label():
    c = Customer.objects.create(name="c", email="c@example.org")
    order = Order.objects.create(customer=c)
    order.status = "shipped"
    order.save()
    change = changes_of(order)["status"]
    assert (change.kind, change.old_display, change.new_display) == ("choice", "New", "Shipped")
    assert change.verbose_name == "status"


def test_foreign_keys_resolve_to_labels_in_one_query_per_model(django_assert_num_queries):
    a = Customer.objects.create(name="Alice", email="a@example.org")
    b = Customer.objects.create(name="Bob", email="b@example.org")
    order = Order.objects.create(customer=a)
    order.customer = b
    order.save()
    change = changes_of(order)["customer"]
    assert change.kind == "fk"
    b.delete() if False else None
    with django_assert_num_queries(1):
        diff.resolve_related([change])
    assert (change.related_old.label, change.related_new.label) == ("Alice", "Bob")
    assert change.related_old.exists and change.related_new.exists


def test_deleted_related_object_is_labelled_as_such():
    a = Customer.objects.create(name="Alice", email="a@example.org")
    b = Customer.objects.create(name="Bob", email="b@example.org")
    order = Order.objects.create(customer=a)
    order.customer = b
    order.save()
    change = changes_of(order)["customer"]
    Order.objects.filter(customer=a).update(customer=b)
    a.delete()
    diff.resolve_related([change])
    assert not change.related_old.exists
    assert "deleted" in change.related_old.label


def test_decimal_keeps_its_precision_and_json_is_structural():
    p = Product.objects.create(
        sku="s", name="n", price=Decimal("10.10"), attributes={"a": 1, "b": [1, 2], "c": {"d": 1}}
    )
    p.price = Decimal("10.20")
    p.attributes = {"a": 2, "b": [1], "c": {"d": 1, "e": "x"}}
    p.save()
    changes = changes_of(p)
    assert (changes["price"].old, changes["price"].new) == (Decimal("10.10"), Decimal("10.20"))
    assert changes["price"].kind == "decimal"
    ops = [(j.path, j.op, j.old, j.new) for j in changes["attributes"].json_changes]
    assert ops == [
        ("a", "changed", 1, 2),
        ("b[1]", "removed", 2, None),
        ("c.e", "added", None, "x"),
    ]


def test_long_text_gets_word_opcodes():
    c = Customer.objects.create(name="c", email="c@example.org")
    order = Order.objects.create(customer=c, notes="deliver to the back door please")
    order.notes = "deliver to the front door please"
    order.save()
    change = changes_of(order)["notes"]
    assert change.kind == "longtext"
    assert ("replace", "back", "front") in change.text_ops
    assert "".join(new for _, _, new in change.text_ops) == order.notes


def test_datetimes_are_shown_in_the_active_timezone():
    c = Customer.objects.create(name="c", email="c@example.org")
    order = Order.objects.create(customer=c)
    with timezone.override("Asia/Tokyo"):
        change = diff.field_changes(
            Order,
            {"placed_at": "2026-01-01T00:00:00+00:00"},
            {"placed_at": "2026-01-02T00:00:00+00:00"},
        )[0]
        assert change.kind == "datetime" and "9" in change.old_display
        assert order  # the model is only used for its metadata


def test_masked_fields_say_changed_without_values():
    c = Customer.objects.create(name="c", email="c@example.org", api_token="first")
    c.api_token = "second"
    c.save()
    change = changes_of(c)["api_token"]
    assert (change.kind, change.old, change.new, change.new_display) == (
        "masked",
        None,
        None,
        "changed",
    )


def test_first_event_lists_every_recorded_field():
    c = Customer.objects.create(name="c", email="c@example.org")
    names = set(changes_of(c))
    assert {"name", "email", "phone", "api_token", "created_at"} <= names and "id" not in names


def test_removed_fields_are_still_shown():
    changes = diff.field_changes(Order, {"legacy": 1}, {"legacy": 2})
    assert [(c.name, c.kind, c.old, c.new) for c in changes] == [("legacy", "removed", 1, 2)]


def test_compare_any_two_versions_and_the_current_row():
    c = Customer.objects.create(name="v1", email="c@example.org")
    for name in ("v2", "v3"):
        c.name = name
        c.save()
    first, _, third = AuditEvent.objects.tracks(c).order_by("event_id")
    assert [(x.old, x.new) for x in diff.compare(Customer, first.raw_data, third.raw_data)] == [
        ("v1", "v3")
    ]
    c.name = "live"
    c.save()
    current = diff.current_data(c, Customer.audit_event_model)
    # Masked markers of the live row match the recorded ones: no spurious change.
    assert [
        (x.old, x.new)
        for x in diff.compare(Customer, third.raw_data, current, masked={"api_token"})
    ] == [("v3", "live")]
    c.api_token = "new secret"
    c.save()
    current = diff.current_data(c, Customer.audit_event_model)
    changed = diff.compare(Customer, third.raw_data, current, masked={"api_token"})
    assert {x.name: x.kind for x in changed} == {"name": "text", "api_token": "masked"}


def test_action_of_reverts_and_labels():
    assert diff.action_of("update", {"audit_action": "reverted"}) == "reverted"
    assert diff.action_of("insert", {"audit_action": "restored"}) == "restored"
    assert diff.action_of("delete", {"audit_action": "reverted"}) == "deleted"
    assert diff.action_of("note", {}) == "note"


def test_diff_spans_labels_and_uses_field_names():
    with audit_app.context(user=None):
        c = Customer.objects.create(name="a", email="c@example.org")
        pk = c.pk
        c.delete()
    deleted = AuditEvent.objects.tracks(Customer(pk=pk)).first()
    assert deleted.label == "delete" and deleted.diff == {}
