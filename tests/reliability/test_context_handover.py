"""Context hand-over on the less common write paths (research C2-C12, "never silently NULL").

Three of these found defects in ``audit_app.runtime`` (a transaction opened without
atomic(), a write starting with a comment, COPY ... FROM STDIN), now fixed.
"""

import pytest
from django.db import connection, transaction

import audit_app
from audit_app.models import Bypass
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db(transaction=True)

INSERT = "INSERT INTO trackapp_widget (name, size, data, secret_token) VALUES ('{}', 0, '{{}}', '')"


def events():
    return [
        (e.name, e.audit_context.metadata if e.audit_context else None)
        for e in Widget.audit_event_model.objects.select_related("audit_context").order_by(
            "audit_id"
        )
    ]


def test_context_and_bypass_end_with_their_block_inside_atomic():
    """The reference behaviour the manual-transaction test below expects too."""
    with transaction.atomic():
        with audit_app.context(who="a"):
            Widget.objects.create(name="1")
        Widget.objects.create(name="2")
        with audit_app.disable_tracking("bulk"):
            Widget.objects.create(name="3")
        Widget.objects.create(name="4")
    assert events() == [("1", {"who": "a"}), ("2", None), ("4", None)]
    assert list(Bypass.objects.values_list("reason", "row_count")) == [("bulk", 1)]


@pytest.mark.parametrize("opened_by", ["set_autocommit", "raw_begin"])
def test_context_and_bypass_end_with_their_block_in_a_manual_transaction(opened_by):
    if opened_by == "set_autocommit":
        transaction.set_autocommit(False)
    else:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
    try:
        with audit_app.context(who="a"):
            Widget.objects.create(name="1")
        Widget.objects.create(name="2")
        with audit_app.disable_tracking("bulk"):
            Widget.objects.create(name="3")
        Widget.objects.create(name="4")
    finally:
        if opened_by == "set_autocommit":
            transaction.commit()
            transaction.set_autocommit(True)
        else:
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")
    bypassed = list(Bypass.objects.values_list("reason", "row_count"))
    assert (events(), bypassed) == (
        [("1", {"who": "a"}), ("2", None), ("4", None)],
        [("bulk", 1)],
    )


def test_a_write_that_starts_with_a_comment_carries_the_context():
    with audit_app.context(who="a"), connection.cursor() as cursor:
        cursor.execute("-- backfill, ticket 42\n" + INSERT.format("line comment"))
        cursor.execute("/* backfill */ " + INSERT.format("block comment"))
    assert events() == [("line comment", {"who": "a"}), ("block comment", {"who": "a"})]


def test_copy_from_stdin_carries_the_context():
    statement = "COPY trackapp_widget (name, size, data, secret_token) FROM STDIN"
    with audit_app.context(who="a"), connection.cursor() as cursor:
        with cursor.copy(statement) as copy:
            copy.write_row(("autocommit", 0, "{}", ""))
    with audit_app.context(who="b"), transaction.atomic():
        Widget.objects.create(name="orm")
        with audit_app.context(who="c"), connection.cursor() as cursor:
            with cursor.copy(statement) as copy:
                copy.write_row(("in transaction", 0, "{}", ""))
    assert events() == [
        ("autocommit", {"who": "a"}),
        ("orm", {"who": "b"}),
        ("in transaction", {"who": "c"}),
    ]
