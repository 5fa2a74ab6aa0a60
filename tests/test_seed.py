"""The example shop's seed command: logins, permissions, history and bulk events."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command

from audit_app.models import AuditEvent
from audit_app.registry import tracked_models
from shop.models import Customer, DigitalProduct, Order, OrderItem, Product, ProductTag, Tag

pytestmark = pytest.mark.django_db

SHOP_MODELS = (Customer, Tag, Product, DigitalProduct, Order, OrderItem)


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed", *args, stdout=out)
    return out.getvalue()


def event_count() -> int:
    return sum(model.audit_event_model.objects.count() for model in tracked_models())


def test_creates_the_demo_logins():
    seed()
    users = {u.username: u for u in get_user_model().objects.all()}

    assert set(users) == {"admin", "editor", "viewer"}
    for name, user in users.items():
        assert user.is_staff
        assert user.check_password(name)
    assert users["admin"].is_superuser
    assert not users["editor"].is_superuser
    assert not users["viewer"].is_superuser


def test_editor_may_do_everything_and_viewer_only_view():
    seed()
    editor = get_user_model().objects.get(username="editor")
    viewer = get_user_model().objects.get(username="viewer")

    for model in (*SHOP_MODELS, ProductTag):
        for action in ("view", "add", "change", "delete"):
            perm = f"shop.{action}_{model._meta.model_name}"
            assert editor.has_perm(perm), perm
            assert viewer.has_perm(perm) is (action == "view"), perm


def test_users_get_no_rights_on_event_tables_or_users():
    seed()
    editor = get_user_model().objects.get(username="editor")

    assert not editor.has_perm("shop.change_staffuser")
    assert not editor.has_perm("shop.view_orderevent")


def test_audit_permissions_go_to_the_editor_when_they_exist():
    # The admin app defines these in a later release; make them exist here.
    content_type, _ = ContentType.objects.get_or_create(app_label="audit_app", model="auditevent")
    for codename in ("revert_auditevent", "export_auditevent"):
        Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": codename}
        )
    seed()
    editor = get_user_model().objects.get(username="editor")
    viewer = get_user_model().objects.get(username="viewer")

    assert editor.has_perm("audit_app.revert_auditevent")
    assert editor.has_perm("audit_app.export_auditevent")
    assert not viewer.has_perm("audit_app.revert_auditevent")
    assert not viewer.has_perm("audit_app.export_auditevent")


def test_builds_a_shop_with_history_by_several_users():
    seed()

    assert Customer.objects.count() >= 50
    assert Product.objects.count() >= 90
    assert DigitalProduct.objects.exists()
    assert Order.objects.count() >= 100
    assert OrderItem.objects.count() >= Order.objects.count()

    order_events = Order.audit_event_model.objects.select_related("audit_context__user")
    labels = set(order_events.values_list("audit_label", flat=True))
    assert {"insert", "update", "delete"} <= labels
    authors = {e.audit_context.user.username for e in order_events if e.audit_context.user}
    assert authors == {"admin", "editor"}
    context = order_events.first().audit_context.metadata
    assert context["url"] == "/seed"
    assert context["method"] == "SEED"
    # Objects are edited several times: some order has at least three versions.
    busiest = max(Order.objects.all()[:50], key=lambda o: o.audit_events.count())
    assert busiest.audit_events.count() >= 3


def test_makes_change_sets_with_inline_edits_and_tag_changes():
    seed()
    saves = AuditEvent.objects.filter(context__metadata__save__startswith="order-")
    order = Order.objects.get(pk=saves.filter(obj_model="shop.Order").first().obj_id)
    edit = next(
        s
        for s in AuditEvent.objects.tracks(order).changesets()[:10]
        if s.metadata.get("save", "").startswith("order-")
    )
    assert edit.own_diff["status"][1] == "paid"
    assert {row.kind for row in edit.rows} >= {"added", "changed"}
    retag = AuditEvent.objects.filter(context__metadata__save__startswith="tags-", label="insert")
    product = Product.objects.get(pk=retag.across(ProductTag).first().data["product"])
    retagged = next(
        s
        for s in AuditEvent.objects.tracks(product).changesets()[:10]
        if s.metadata.get("save", "").startswith("tags-")
    )
    assert {row.kind for row in retagged.rows} >= {"added"}


def test_is_idempotent_unless_forced():
    seed()
    counts = [model.objects.count() for model in SHOP_MODELS]
    events = event_count()

    assert "exists already" in seed()
    assert [model.objects.count() for model in SHOP_MODELS] == counts
    assert event_count() == events

    seed("--force")
    assert Customer.objects.count() > counts[0]
    assert get_user_model().objects.count() == 3


def test_events_writes_the_requested_number_in_bulk(django_assert_max_num_queries):
    seed()
    before = event_count()

    with django_assert_max_num_queries(60):
        out = seed("--events", "2500")

    assert event_count() - before == 2500
    assert "Wrote 2500 events." in out
    bulk = Order.audit_event_model.objects.filter(notes="bulk")
    assert bulk.filter(audit_label="insert").count() == 625
    assert bulk.filter(audit_label="update").count() == 1875
    assert not bulk.filter(audit_context__user__isnull=True).exists()


def test_events_seeds_first_on_an_empty_database():
    out = seed("--events", "10")

    assert "Seeded the shop." in out
    assert "Wrote 10 events." in out


def test_rejects_a_negative_event_count():
    with pytest.raises(CommandError, match="--events must be 0 or more"):
        seed("--events", "-1")
