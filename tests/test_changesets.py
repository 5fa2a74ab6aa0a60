"""Followed histories and change sets, read from real event tables."""

from decimal import Decimal

import pytest
from django.db import transaction

import audit_app
from audit_app.changesets import ADDED, CHANGED, REMOVED, changeset_key
from audit_app.models import AuditEvent
from shop.models import Product, Tag
from tests.trackapp.models import Basket, BasketLine, BasketSticker, GiftLine, Label

pytestmark = pytest.mark.django_db


def history(obj, **kwargs):
    return list(AuditEvent.objects.tracks(obj, **kwargs).order_by("created_at", "event_id"))


def summary(changeset):
    return {
        name: sorted((row.kind, row.obj_id) for row in rows)
        for name, rows in ((r.name, rows) for r, rows in changeset.relations())
    }


@pytest.fixture
def basket():
    with audit_app.context(reason="setup"):
        basket = Basket.objects.create(name="weekly")
        BasketLine.objects.create(basket=basket, name="milk", quantity=1)
        BasketLine.objects.create(basket=basket, name="bread", quantity=2)
    return basket


class TestFollowedReads:
    def test_children_events_are_part_of_the_history(self, basket):
        models = [e.event_model for e in history(basket)]
        assert models == ["trackapp.BasketEvent", *["trackapp.BasketLineEvent"] * 2]

    def test_follow_empty_reads_the_object_alone(self, basket):
        assert [e.event_model for e in history(basket, follow=())] == ["trackapp.BasketEvent"]

    def test_follow_picks_relations(self, basket):
        BasketSticker.objects.create(basket=basket, label=Label.objects.create(name="eco"))
        picked = {e.event_model for e in history(basket, follow=["stickers"])}
        assert picked == {"trackapp.BasketEvent", "trackapp.BasketStickerEvent"}

    def test_deleted_children_stay_in_the_history(self, basket):
        milk = basket.lines.get(name="milk")
        pk = str(milk.pk)
        milk.delete()
        events = [e for e in history(basket) if e.obj_id == pk]
        assert [e.label for e in events] == ["insert", "delete"]

    def test_child_moved_away_keeps_its_move_but_not_its_later_life(self, basket):
        other = Basket.objects.create(name="other")
        milk = basket.lines.get(name="milk")
        BasketLine.objects.filter(pk=milk.pk).update(basket=other)  # a bulk move
        BasketLine.objects.filter(pk=milk.pk).update(quantity=9)  # in the other basket
        mine = [(e.label, e.data["basket"]) for e in history(basket) if e.obj_id == str(milk.pk)]
        assert mine == [("insert", basket.pk), ("update", other.pk)]
        theirs = [e.data["quantity"] for e in history(other) if e.obj_id == str(milk.pk)]
        assert theirs == [1, 9]

    def test_child_moved_back_is_followed_again(self, basket):
        other = Basket.objects.create(name="other")
        milk = basket.lines.get(name="milk")
        for target in (other, basket):
            milk.basket = target
            milk.save()
        mine = [e.data["basket"] for e in history(basket) if e.obj_id == str(milk.pk)]
        assert mine == [basket.pk, other.pk, basket.pk]

    def test_auto_created_through_table(self):
        product = Product.objects.create(sku="s1", name="Shirt", price=Decimal("1"))
        eco, fresh = Tag.objects.create(name="eco"), Tag.objects.create(name="fresh")
        product.tags.add(eco, fresh)
        product.tags.remove(eco)
        Product.objects.create(sku="s2", name="Other", price=Decimal("1")).tags.add(eco)
        tags = [
            (e.label, e.data["tag"])
            for e in history(product)
            if e.event_model == "shop.ProductTagEvent"
        ]
        assert sorted(tags) == sorted(
            [("insert", eco.pk), ("insert", fresh.pk), ("delete", eco.pk)]
        )

    def test_explicit_through_table(self, basket):
        fresh = Label.objects.create(name="fresh")
        BasketSticker.objects.create(basket=basket, label=fresh, corner="left")
        stickers = [e for e in history(basket) if e.event_model == "trackapp.BasketStickerEvent"]
        assert [e.data["corner"] for e in stickers] == ["left"]

    def test_concrete_inheritance_children(self, basket):
        gift = GiftLine.objects.create(basket=basket, name="card", message="hi")
        GiftLine.objects.filter(pk=gift.pk).update(message="hello")  # its own table only
        mine = [(e.event_model, e.label) for e in history(basket) if e.obj_id == str(gift.pk)]
        assert mine == [
            ("trackapp.BasketLineEvent", "insert"),
            ("trackapp.GiftLineEvent", "insert"),
            ("trackapp.GiftLineEvent", "update"),
        ]

    def test_other_baskets_children_are_not_included(self, basket):
        other = Basket.objects.create(name="other")
        BasketLine.objects.create(basket=other, name="tea")
        assert not [e for e in history(basket) if e.data.get("name") == "tea"]

    def test_undeclared_follow_is_refused(self, basket):
        with pytest.raises(ValueError, match="does not follow"):
            AuditEvent.objects.tracks(basket, follow=["audit_events"])


class TestChangeSets:
    def test_one_context_is_one_change_set(self, basket):
        (created,) = AuditEvent.objects.tracks(basket).changesets()[:5]
        assert created.action == "created" and created.own_diff is None
        assert {r.kind for r in created.rows} == {ADDED} and len(created.rows) == 2

    def test_inline_edits_are_grouped_by_kind(self, basket):
        milk, bread = basket.lines.get(name="milk"), basket.lines.get(name="bread")
        with audit_app.context(reason="edit"):
            basket.name = "monthly"
            basket.save()
            milk.quantity = 3
            milk.save()
            bread_pk = bread.pk
            bread.delete()
            tea = BasketLine.objects.create(basket=basket, name="tea")
        edit = AuditEvent.objects.tracks(basket).changesets()[0]
        assert edit.own_diff == {"name": ["weekly", "monthly"]}
        assert summary(edit) == {
            "lines": sorted(
                [(CHANGED, str(milk.pk)), (REMOVED, str(bread_pk)), (ADDED, str(tea.pk))]
            )
        }
        (changed,) = edit.rows_of(CHANGED)
        assert changed.diff == {"quantity": [1, 3]}

    def test_two_saves_in_one_context_merge(self, basket):
        with audit_app.context(reason="two saves"):
            for name in ("a", "b"):
                basket.name = name
                basket.save()
        latest = AuditEvent.objects.tracks(basket).changesets()[0]
        assert len(latest.own) == 2 and latest.own_diff == {"name": ["weekly", "b"]}

    def test_events_without_context_are_sets_of_their_own(self, basket):
        milk = basket.lines.get(name="milk")
        for quantity in (4, 5):
            milk.quantity = quantity
            milk.save()
        sets = AuditEvent.objects.tracks(basket).changesets()[:2]
        assert [len(s.events) for s in sets] == [1, 1] and sets[0].anchor is None
        assert sets[0].key == changeset_key(sets[0].newest)

    def test_row_added_and_removed_in_one_set_is_left_out(self, basket):
        with audit_app.context(reason="flip"):
            BasketLine.objects.create(basket=basket, name="gone").delete()
            basket.name = "x"
            basket.save()
        latest = AuditEvent.objects.tracks(basket).changesets()[0]
        assert latest.rows == [] and len(latest.events) == 3

    def test_links_added_and_removed(self, basket):
        eco, fresh = Label.objects.create(name="eco"), Label.objects.create(name="fresh")
        BasketSticker.objects.create(basket=basket, label=eco)
        with audit_app.context(reason="relabel"):
            BasketSticker.objects.filter(basket=basket, label=eco).delete()
            BasketSticker.objects.create(basket=basket, label=fresh)
        latest = AuditEvent.objects.tracks(basket).changesets()[0]
        assert sorted((r.kind, r.linked_id) for r in latest.rows) == [
            (ADDED, fresh.pk),
            (REMOVED, eco.pk),
        ]

    def test_move_is_a_removal_here_and_an_addition_there(self, basket):
        other = Basket.objects.create(name="other")
        milk = basket.lines.get(name="milk")
        with audit_app.context(reason="move"):
            milk.basket = other
            milk.save()
        here = AuditEvent.objects.tracks(basket).changesets()[0]
        there = AuditEvent.objects.tracks(other).changesets()[0]
        assert [r.kind for r in here.rows] == [REMOVED]
        assert [r.kind for r in there.rows] == [ADDED]

    def test_pages_are_whole_and_newest_first(self, basket):
        for n in range(3):
            with audit_app.context(reason=f"edit {n}"):
                basket.name = f"n{n}"
                basket.save()
                BasketLine.objects.create(basket=basket, name=f"line {n}")
        sets = AuditEvent.objects.tracks(basket).changesets()
        first, second = sets[0:2], sets[2:4]
        assert [s.metadata["reason"] for s in first] == ["edit 2", "edit 1"]
        assert [s.metadata["reason"] for s in second] == ["edit 0", "setup"]
        assert all(len(s.events) == 2 for s in first) and len(sets) == 4

    def test_filters_pick_sets_which_are_shown_whole(self, basket):
        with audit_app.context(reason="lines only"):
            BasketLine.objects.create(basket=basket, name="jam")
        events = AuditEvent.objects.tracks(basket)
        picked = events.across(Basket).changesets(events=events)[:5]
        assert [s.metadata["reason"] for s in picked] == ["setup"]
        assert len(picked[0].events) == 3

    def test_event_changeset(self, basket):
        first = AuditEvent.objects.tracks(basket, follow=()).get()
        changeset = first.changeset()
        assert len(changeset.events) == 3 and changeset.anchor.id == first.id
        assert first.changeset(follow=()).events == [first]


@pytest.mark.django_db(transaction=True)
def test_one_save_in_two_transactions_is_one_change_set():
    with audit_app.context(reason="two transactions"):
        with transaction.atomic():
            basket = Basket.objects.create(name="b")
        with transaction.atomic():
            BasketLine.objects.create(basket=basket, name="x")
    (changeset,) = AuditEvent.objects.tracks(basket).changesets()[:5]
    assert len(changeset.events) == 2 and [r.kind for r in changeset.rows] == [ADDED]
