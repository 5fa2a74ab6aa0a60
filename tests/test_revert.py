"""Revert and restore: all-or-nothing, validated, conflict-aware, itself audited."""

import threading

import pytest
from django.db import connections

import audit_app
from audit_app import reverting
from audit_app.exceptions import (
    NothingToRevert,
    RevertConflict,
    RevertError,
    RevertMissingRelated,
    RevertSchemaError,
    RevertUniqueClash,
    RevertValidationError,
)
from audit_app.models import AuditEvent
from shop.models import Customer, DigitalProduct, Order, Product
from tests.trackapp.models import Invoice

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(django_user_model):
    return django_user_model.objects.create_user("editor")


def versions(obj):
    return list(AuditEvent.objects.tracks(obj).order_by("event_id"))


def make_order(**kwargs):
    customer = Customer.objects.create(name="C", email=f"c{Customer.objects.count()}@example.org")
    return Order.objects.create(customer=customer, **kwargs)


def test_revert_restores_the_version_and_is_audited(editor):
    order = make_order(status="new", notes="first")
    order.status, order.notes = "paid", "second"
    order.save()
    first = versions(order)[0]
    saved = first.revert(user=editor, reason="typo")
    order.refresh_from_db()
    assert (order.status, order.notes) == ("new", "first") == (saved.status, saved.notes)
    latest = AuditEvent.objects.tracks(order).first()
    assert latest.action == "reverted"
    assert latest.metadata["audit_source"] == f"shop.OrderEvent:{first.event_id}"
    assert (latest.metadata["reason"], latest.metadata["user"], latest.username) == (
        "typo",
        editor.pk,
        "editor",
    )
    assert latest.diff == {"status": ["paid", "new"], "notes": ["second", "first"]}


def test_partial_revert_touches_only_the_chosen_fields():
    order = make_order(status="new", notes="first")
    order.status, order.notes = "paid", "second"
    order.save()
    audit_app.revert(versions(order)[0], fields=["notes"])
    order.refresh_from_db()
    assert (order.status, order.notes) == ("paid", "first")


def test_unknown_field_names_are_refused():
    order = make_order()
    with pytest.raises(RevertError, match=r"no field\(s\) \['nope'\]"):
        audit_app.revert(versions(order)[0], fields=["nope"])


def test_restore_a_deleted_object_with_its_primary_key(editor):
    order = make_order(notes="keep me")
    pk = order.pk
    order.delete()
    deleted = AuditEvent.objects.tracks(Order(pk=pk)).first()
    assert deleted.label == "delete"
    restored = deleted.revert(user=editor)
    assert restored.pk == pk and Order.objects.get(pk=pk).notes == "keep me"
    assert AuditEvent.objects.tracks(Order(pk=pk)).first().action == "restored"


@pytest.mark.usefixtures("layout")
def test_restore_a_concrete_inheritance_child():
    d = DigitalProduct.objects.create(
        sku="d1", name="Ebook", price="3.00", download_url="https://x.org/a"
    )
    pk = d.pk
    d.delete()
    child_delete = AuditEvent.objects.across(DigitalProduct).filter(label="delete").get()
    audit_app.revert(child_delete)
    again = DigitalProduct.objects.get(pk=pk)
    assert (again.name, again.sku, again.download_url) == ("Ebook", "d1", "https://x.org/a")


def test_conflict_when_changed_since_the_expected_event():
    order = make_order(status="new")
    first = versions(order)[0]
    order.status = "paid"
    order.save()
    order.status = "shipped"
    order.save()
    seen = versions(order)[1].event_id  # the user looked at "paid"
    with pytest.raises(RevertConflict, match="changed since you looked"):
        first.revert(expected_event_id=seen)
    order.refresh_from_db()
    assert order.status == "shipped"
    first.revert(expected_event_id=versions(order)[-1].event_id)


def test_missing_related_object_names_model_and_pk():
    old_customer = Customer.objects.create(name="Old", email="old@example.org")
    order = Order.objects.create(customer=old_customer)
    order.customer = Customer.objects.create(name="New", email="new@example.org")
    order.save()
    old_pk = old_customer.pk
    old_customer.delete()
    with pytest.raises(RevertMissingRelated, match=f"Customer {old_pk} no longer exists"):
        versions(order)[0].revert()
    order.refresh_from_db()
    assert order.customer.name == "New"


def test_unique_clash_names_the_field():
    p = Product.objects.create(sku="A-1", name="p", price=1)
    p.sku = "A-2"
    p.save()
    Product.objects.create(sku="A-1", name="other", price=1)
    with pytest.raises(RevertUniqueClash, match="sku"):
        versions(p)[0].revert()
    p.refresh_from_db()
    assert p.sku == "A-2"


def test_validation_failure_lists_field_errors():
    p = Product.objects.create(sku="v", name="p", price=1)
    Product.objects.filter(pk=p.pk).update(price=-5)  # bypasses validation
    p.name = "q"
    p.save()
    bad_version = versions(p)[1]  # price -5
    with pytest.raises(RevertValidationError, match="price") as info:
        bad_version.revert()
    assert "price" in info.value.errors


def test_schema_change_is_reported():
    inv = Invoice.objects.create(amount=1)
    inv.amount = 2
    inv.save()
    version = reverting.load_version(versions(inv)[0])
    # A value recorded under an older schema that today's field cannot take.
    version.data["amount"] = "one hundred"
    with pytest.raises(RevertSchemaError, match="no longer fits"):
        reverting.revert(version)
    version.data["amount"] = 1
    version.data["dropped"] = "x"
    with pytest.raises(RevertSchemaError, match="no longer exists"):
        reverting._values(version, ["dropped"])
    inv.refresh_from_db()
    assert inv.amount == 2


def test_nothing_to_revert():
    order = make_order()
    with pytest.raises(NothingToRevert, match="already matches"):
        versions(order)[0].revert()


@pytest.mark.usefixtures("layout")
def test_masked_fields_are_kept_and_reported_as_skipped():
    c = Customer.objects.create(name="a", email="m@example.org", api_token="secret-1")
    c.name, c.api_token = "b", "secret-2"
    c.save()
    plan = reverting.preview(versions(c)[0])
    assert plan.skipped == ["api_token"] and plan.fields == ["name"]
    audit_app.revert(versions(c)[0])
    c.refresh_from_db()
    assert (c.name, c.api_token) == ("a", "secret-2")


def test_preview_writes_nothing_and_shows_the_change():
    order = make_order(status="new")
    order.status = "paid"
    order.save()
    count = AuditEvent.objects.tracks(order).count()
    plan = reverting.preview(versions(order)[0])
    assert [(c.name, c.old_display, c.new_display) for c in plan.changes] == [
        ("status", "Paid", "New")
    ]
    assert plan.problems == [] and not plan.is_restore
    assert AuditEvent.objects.tracks(order).count() == count


@pytest.mark.usefixtures("layout")
def test_field_subset_model_reverts_tracked_fields_only():
    inv = Invoice.objects.create(status="draft", amount=1, comment="c1")
    inv.status, inv.comment = "sent", "c2"
    inv.save()
    versions(inv)[0].revert()
    inv.refresh_from_db()
    assert (inv.status, inv.comment) == ("draft", "c2")


@pytest.mark.django_db(transaction=True)
def test_failure_inside_the_save_leaves_nothing(monkeypatch):
    from django.db.models.signals import post_save

    order = make_order(status="new")
    order.status = "paid"
    order.save()
    before = AuditEvent.objects.tracks(order).count()

    def explode(sender, **kwargs):
        raise RuntimeError("signal failed")

    post_save.connect(explode, sender=Order)
    try:
        with pytest.raises(RuntimeError):
            versions(order)[0].revert()
    finally:
        post_save.disconnect(explode, sender=Order)
    order.refresh_from_db()
    assert order.status == "paid"
    assert AuditEvent.objects.tracks(order).count() == before


@pytest.mark.django_db(transaction=True)
def test_concurrent_edit_during_revert_is_a_conflict_not_a_lost_update():
    order = make_order(status="new")
    order.status = "paid"
    order.save()
    first, seen = versions(order)
    errors = []

    def other_editor():
        try:
            Order.objects.filter(pk=order.pk).update(status="shipped")
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_editor)
    thread.start()
    thread.join()
    try:
        first.revert(expected_event_id=seen.event_id)
    except RevertConflict as exc:
        errors.append(exc)
    assert errors and Order.objects.get(pk=order.pk).status == "shipped"
