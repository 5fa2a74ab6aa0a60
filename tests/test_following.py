"""Followed relations: declaration, system checks and the index on the child's events."""

import pytest
from django.db import connection

import audit_app
from audit_app import following
from audit_app.checks import FOLLOW_CHECK_IDS, check_follows, follow_errors
from shop.models import Customer, Product, ProductTag, StaffUser
from tests.trackapp.models import Basket, BasketLine, BasketSticker, GiftLine


def test_declared_follows_resolve_to_their_event_tables():
    lines, stickers = following.followed_relations(Basket)
    assert (lines.name, lines.kind, lines.label) == ("lines", following.CHILDREN, "Lines")
    assert lines.event_model is BasketLine.audit_event_model
    assert (lines.fk_name, lines.fk_column) == ("basket", "basket_id")
    assert (stickers.kind, stickers.target_name) == (following.LINKS, "label")
    assert stickers.event_model is BasketSticker.audit_event_model
    (tags,) = following.followed_relations(Product)
    assert tags.kind == following.LINKS and tags.event_model is ProductTag.audit_event_model
    assert (tags.fk_name, tags.target_name) == ("product", "tag")


def test_follow_argument_picks_declared_relations_only():
    assert [f.name for f in following.followed_relations(Basket, ["stickers"])] == ["stickers"]
    assert following.followed_relations(Basket, ()) == []
    with pytest.raises(ValueError, match="does not follow"):
        following.followed_relations(Basket, ["nope"])
    with pytest.raises(TypeError):
        following.followed_relations(Basket, "lines")


def test_concrete_inheritance_child_inherits_its_parents_follows():
    assert following.followed_relations(GiftLine) == following.followed_relations(BasketLine)


def test_track_refuses_a_follow_that_is_not_a_list_of_names():
    with pytest.raises(TypeError, match="list of relation names"):
        audit_app.track(follow="items")


@pytest.mark.parametrize(
    ("model", "name", "kind"),
    [
        (Basket, "nope", "unknown"),
        (Basket, "name", "not_followable"),
        (BasketLine, "basket", "not_followable"),
        (StaffUser, "logentry", "untracked"),
    ],
)
def test_each_problem_has_its_check_id_and_a_hint(model, name, kind):
    problem = following.resolve_name(model, name)
    assert isinstance(problem, following.FollowProblem) and problem.kind == kind
    (error,) = follow_errors([problem])
    assert error.id == FOLLOW_CHECK_IDS[kind] and error.obj is model
    assert name in error.msg and error.hint


def test_check_ids_of_follow_problems_are_distinct():
    assert len(set(FOLLOW_CHECK_IDS.values())) == len(FOLLOW_CHECK_IDS)


def test_the_project_declares_no_broken_follows():
    assert check_follows() == []


def test_followed_foreign_keys_only_are_indexed():
    line_indexes = BasketLine.audit_event_model._meta.indexes
    assert [i.fields for i in line_indexes if i.name.endswith("_fol")] == [["basket"]]
    assert not [i for i in Customer.audit_event_model._meta.indexes if i.name.endswith("_fol")]


@pytest.mark.django_db
def test_follow_index_exists_in_the_database():
    table = BasketLine.audit_event_model._meta.db_table
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    assert any(c["index"] and c["columns"] == ["basket_id"] for c in constraints.values())
