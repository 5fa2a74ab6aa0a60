"""Revert to a change set: the object and its followed rows as they were right after it."""

from decimal import Decimal

import pytest

import audit_app
from audit_app.changeset_revert import DELETE, RESTORE, REVERT, plan_changeset_revert
from audit_app.exceptions import (
    NothingToRevert,
    RevertConflict,
    RevertMissingRelated,
    RevertUniqueClash,
    RevertValidationError,
)
from audit_app.models import AuditEvent
from shop.models import Product, ProductTag, Tag
from tests.trackapp.models import Basket, BasketLine, BasketSticker, Label

pytestmark = pytest.mark.django_db


def event_count():
    return AuditEvent.objects.without_diffs().count()


def state(basket):
    basket.refresh_from_db()
    lines = sorted((line.pk, line.name, line.quantity) for line in basket.lines.all())
    stickers = sorted(
        BasketSticker.objects.filter(basket=basket).values_list("label__name", flat=True)
    )
    return basket.name, lines, stickers


@pytest.fixture
def edited():
    """A basket saved with two lines and a sticker, then edited in one request."""
    eco, fresh = Label.objects.create(name="eco"), Label.objects.create(name="fresh")
    with audit_app.context(reason="setup"):
        basket = Basket.objects.create(name="weekly")
        milk = BasketLine.objects.create(basket=basket, name="milk", quantity=1, code="M")
        BasketLine.objects.create(basket=basket, name="bread", quantity=2)
        BasketSticker.objects.create(basket=basket, label=eco)
    before = state(basket)
    with audit_app.context(reason="edit"):
        basket.name = "monthly"
        basket.save()
        milk.quantity = 5
        milk.save()
        basket.lines.get(name="bread").delete()
        BasketLine.objects.create(basket=basket, name="tea")
        BasketSticker.objects.filter(basket=basket).delete()
        BasketSticker.objects.create(basket=basket, label=fresh)
    setup = AuditEvent.objects.tracks(basket).changesets()[1].anchor
    return basket, setup, before


def test_revert_brings_object_and_rows_back(edited):
    basket, setup, before = edited
    audit_app.revert(setup, reason="undo")
    assert state(basket) == before  # bread restored with its key, tea deleted, links swapped


def test_revert_is_one_change_set_recorded_as_reverted(edited):
    basket, setup, _before = edited
    audit_app.revert(setup, reason="undo")
    latest = AuditEvent.objects.tracks(basket).changesets()[0]
    assert latest.action == "reverted" and latest.metadata["reason"] == "undo"
    assert latest.metadata["audit_source"] == f"trackapp.BasketEvent:{setup.event_id}"
    kinds = sorted((r.relation.name, r.kind) for r in latest.rows)
    assert kinds == [
        ("lines", "added"),
        ("lines", "changed"),
        ("lines", "removed"),
        ("stickers", "added"),
        ("stickers", "removed"),
    ]


def test_preview_lists_every_row_and_writes_nothing(edited):
    basket, setup, _before = edited
    count = event_count()
    plan = plan_changeset_revert(setup)
    assert plan.problems == []
    assert [c.name for c in plan.changes] == ["name"]
    actions = sorted((a.relation.name, a.action) for a in plan.rows)
    assert actions == [
        ("lines", DELETE),
        ("lines", RESTORE),
        ("lines", REVERT),
        ("stickers", DELETE),
        ("stickers", RESTORE),
    ]
    assert event_count() == count and basket.lines.count() == 2


def test_fields_limit_the_objects_own_fields(edited):
    basket, setup, before = edited
    audit_app.revert(setup, fields=[])
    name, lines, stickers = state(basket)
    assert name == "monthly" and (lines, stickers) == before[1:]


def test_follow_empty_reverts_the_object_alone(edited):
    basket, setup, _before = edited
    audit_app.revert(setup, follow=())
    name, lines, _stickers = state(basket)
    assert name == "weekly" and "tea" in [line[1] for line in lines]


def test_a_row_changed_since_the_preview_is_a_conflict(edited):
    basket, setup, _before = edited
    plan = plan_changeset_revert(setup)
    BasketLine.objects.filter(name="tea").update(quantity=9)
    count = event_count()
    with pytest.raises(RevertConflict):
        audit_app.changeset_revert.revert_changeset(setup, expected=plan.expected)
    assert event_count() == count and state(basket)[0] == "monthly"


def test_unique_value_taken_blocks_everything(edited):
    basket, setup, _before = edited
    BasketLine.objects.filter(name="milk").update(code=None)
    BasketLine.objects.create(basket=Basket.objects.create(name="x"), name="y", code="M")
    count = event_count()
    with pytest.raises(RevertUniqueClash):
        audit_app.revert(setup)
    assert event_count() == count and state(basket)[0] == "monthly"


def test_foreign_key_to_a_row_that_is_gone_blocks(edited):
    _basket, setup, _before = edited
    Label.objects.filter(name="eco").delete()
    plan = plan_changeset_revert(setup)
    assert type(plan.problems[0]) is RevertMissingRelated
    with pytest.raises(RevertMissingRelated):
        audit_app.revert(setup)
    assert BasketLine.objects.filter(name="tea").exists()


def test_row_moved_away_is_moved_back():
    with audit_app.context(reason="setup"):
        basket = Basket.objects.create(name="a")
        line = BasketLine.objects.create(basket=basket, name="milk")
    other = Basket.objects.create(name="b")
    BasketLine.objects.filter(pk=line.pk).update(basket=other)
    setup = AuditEvent.objects.tracks(basket, follow=()).get()
    audit_app.revert(setup)
    line.refresh_from_db()
    assert line.basket == basket


def test_nothing_to_revert(edited):
    basket, _setup, _before = edited
    newest = AuditEvent.objects.tracks(basket).changesets()[0].anchor
    with pytest.raises(NothingToRevert):
        audit_app.revert(newest)


def test_validation_error_of_the_object_blocks_its_rows_too():
    new, sale = Tag.objects.create(name="new"), Tag.objects.create(name="sale")
    with audit_app.context(reason="create"):
        product = Product.objects.create(sku="v", name="Valid", price=Decimal("-1"))
        product.tags.add(new)
    with audit_app.context(reason="fix"):
        product.price = Decimal("5")
        product.save()
        product.tags.set([sale])
    created = AuditEvent.objects.tracks(product).changesets()[1].anchor
    count = event_count()
    with pytest.raises(RevertValidationError):
        audit_app.revert(created)
    assert event_count() == count
    assert list(ProductTag.objects.values_list("tag__name", flat=True)) == ["sale"]
