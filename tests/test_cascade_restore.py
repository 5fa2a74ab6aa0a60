"""Restore with the cascade: the object and the followed rows its deletion removed."""

from decimal import Decimal

import pytest

import audit_app
from audit_app.cascade import plan_restore
from audit_app.exceptions import RevertConflict, RevertMissingRelated, RevertUniqueClash
from audit_app.models import AuditEvent
from shop.models import Product, ProductTag, Tag
from tests.trackapp.models import Basket, BasketLine, BasketSticker, GiftLine, Label

pytestmark = pytest.mark.django_db


def event_count():
    return AuditEvent.objects.without_diffs().count()


@pytest.fixture
def deleted_basket():
    """A basket with lines (one a gift line) and a sticker, deleted in one request."""
    with audit_app.context(reason="fill"):
        basket = Basket.objects.create(name="weekly")
        BasketLine.objects.create(basket=basket, name="milk", quantity=2, code="M1")
        GiftLine.objects.create(basket=basket, name="card", message="hi")
        BasketSticker.objects.create(basket=basket, label=Label.objects.create(name="eco"))
        BasketLine.objects.create(basket=Basket.objects.create(name="other"), name="tea")
    pks = {
        "basket": basket.pk,
        "lines": sorted(basket.lines.values_list("pk", flat=True)),
        "stickers": list(BasketSticker.objects.filter(basket=basket).values_list("pk", flat=True)),
    }
    with audit_app.context(reason="clear out"):
        basket.delete()
    event = AuditEvent.objects.across(Basket).deleted().get()
    return event, pks


def test_restore_brings_back_rows_with_their_keys(deleted_basket):
    event, pks = deleted_basket
    restored = audit_app.revert(event, reason="mistake")
    assert restored.pk == pks["basket"]
    assert sorted(restored.lines.values_list("pk", flat=True)) == pks["lines"]
    gift = GiftLine.objects.get(basket=restored)
    assert (gift.name, gift.message) == ("card", "hi")
    assert (
        list(BasketSticker.objects.filter(basket=restored).values_list("pk", flat=True))
        == (pks["stickers"])
    )
    assert BasketLine.objects.get(code="M1").quantity == 2


def test_restore_is_one_change_set_recorded_as_restored(deleted_basket):
    event, _pks = deleted_basket
    restored = audit_app.revert(event, reason="mistake")
    latest = AuditEvent.objects.tracks(restored).changesets()[0]
    assert latest.action == "restored" and latest.metadata["reason"] == "mistake"
    assert latest.metadata["audit_source"] == f"trackapp.BasketEvent:{event.event_id}"
    assert sorted(row.kind for row in latest.rows) == ["added"] * 3


def test_follow_empty_restores_the_object_alone(deleted_basket):
    event, _pks = deleted_basket
    restored = event.revert(follow=())
    assert not restored.lines.exists()


def test_preview_lists_every_row_and_writes_nothing(deleted_basket):
    event, pks = deleted_basket
    before = event_count()
    plan = plan_restore(event)
    assert plan.problems == [] and plan.root.is_restore
    assert (
        sorted(r.plan.version.pk for r in plan.rows if r.relation.name == "lines") == pks["lines"]
    )
    assert not Basket.objects.filter(pk=pks["basket"]).exists()
    assert event_count() == before


def test_unique_value_taken_blocks_and_nothing_is_written(deleted_basket):
    event, pks = deleted_basket
    BasketLine.objects.create(basket=Basket.objects.create(name="x"), name="n", code="M1")
    before = event_count()
    plan = plan_restore(event)
    assert [type(p) for p in plan.problems] == [RevertUniqueClash]
    with pytest.raises(RevertUniqueClash):
        audit_app.revert(event)
    assert not Basket.objects.filter(pk=pks["basket"]).exists()
    assert event_count() == before


def test_row_pointing_at_a_row_that_is_gone_blocks(deleted_basket):
    event, _pks = deleted_basket
    Label.objects.all().delete()
    with pytest.raises(RevertMissingRelated, match="no longer exists"):
        audit_app.revert(event)
    assert not Basket.objects.exists() or not Basket.objects.filter(name="weekly").exists()


def test_row_that_exists_again_is_a_conflict(deleted_basket):
    event, pks = deleted_basket
    other = Basket.objects.get(name="other")
    BasketLine.objects.create(pk=pks["lines"][0], basket=other, name="squatter")
    plan = plan_restore(event)
    assert any(isinstance(p, RevertConflict) and "exists again" in str(p) for p in plan.problems)
    with pytest.raises(RevertConflict):
        audit_app.revert(event)
    assert not Basket.objects.filter(pk=pks["basket"]).exists()


def test_rows_deleted_in_another_change_set_stay_deleted():
    with audit_app.context(reason="fill"):
        basket = Basket.objects.create(name="b")
        BasketLine.objects.create(basket=basket, name="early")
    with audit_app.context(reason="trim"):
        BasketLine.objects.filter(basket=basket).delete()
    with audit_app.context(reason="refill"):
        BasketLine.objects.create(basket=basket, name="late")
    with audit_app.context(reason="drop"):
        basket.delete()
    event = AuditEvent.objects.across(Basket).deleted().get()
    restored = audit_app.revert(event)
    assert list(restored.lines.values_list("name", flat=True)) == ["late"]


def test_product_comes_back_with_its_tag_links():
    tag = Tag.objects.create(name="sale")
    product = Product.objects.create(sku="s", name="Shirt", price=Decimal("3"))
    product.tags.add(tag)
    pk = product.pk
    with audit_app.context(reason="drop"):
        product.delete()
    assert not ProductTag.objects.exists()
    event = AuditEvent.objects.across(Product).deleted().get()
    restored = audit_app.revert(event)
    assert restored.pk == pk and list(restored.tags.all()) == [tag]
