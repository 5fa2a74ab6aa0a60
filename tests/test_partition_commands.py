"""``manage.py audit partition`` and ``audit partitions``: what they print, and bad input
refused with a clear error and nothing changed."""

import datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit_app import partitioning
from tests.partition_helpers import all_rows, table_of, write_event_at
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db


def schema():
    """Every relation of the database with its kind and comment, every trigger and
    constraint."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, relkind, obj_description(oid, 'pg_class') FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace ORDER BY relname"
        )
        relations = cursor.fetchall()
        cursor.execute("SELECT tgrelid::regclass::text, tgname FROM pg_trigger ORDER BY 1, 2")
        triggers = cursor.fetchall()
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, convalidated FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
        )
        return relations, triggers, cursor.fetchall()


@pytest.mark.parametrize(
    "args, message",
    [
        (["partition", "nope.Model", "--by", "month"], r"Unknown model 'nope.Model'"),
        (["partition", "trackapp.Color", "--by", "month"], "trackapp.Color is not tracked"),
        (["partition", "trackapp.Widget", "--by", "year"], r"invalid choice: 'year'"),
        (["partition", "trackapp.Widget"], "the following arguments are required: --by"),
        (
            ["partition", "shop.Order", "--by", "month"],
            r"shop_orderevent is already partitioned \(by month\)",
        ),
        (
            ["partition", "shop.Order", "--by", "week"],
            r"shop.Order declares track\(partition='month'\); convert it --by month",
        ),
        (["partitions", "--ahead", "-1"], "--ahead must be 0 or more, not -1"),
        (
            ["partitions", "--model", "trackapp.Widget"],
            r"The events of trackapp.Widget are not partitioned; partition them with "
            r"`manage.py audit partition trackapp.Widget --by month`",
        ),
        (["partitions", "--model", "trackapp.Color"], "trackapp.Color is not tracked"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(args, message):
    Widget.objects.create(name="kept")
    before = schema(), all_rows(table_of(Widget))
    with pytest.raises(CommandError, match=message):
        call_command("audit", *args)
    assert (schema(), all_rows(table_of(Widget))) == before


def test_partition_converts_lists_and_hints_at_the_declaration(capsys):
    widgets = [Widget.objects.create(name=f"w{i}") for i in range(3)]
    history = all_rows(table_of(Widget))
    call_command("audit", "partition", "trackapp.Widget", "--by", "week")
    out = capsys.readouterr().out
    assert partitioning.interval_of(table_of(Widget)) == "week"
    assert all_rows(table_of(Widget)) == history
    names = [p.name for p in partitioning.partitions(table_of(Widget))]
    assert f"trackapp.Widget ({table_of(Widget)}, by week):" in out
    assert all(f"    {name}: " in out for name in names)
    assert "safety net (any time without a partition)" in out
    assert "Declare it in code too: @audit_app.track(..., partition='week')" in out
    widgets[0].delete()
    assert len(all_rows(table_of(Widget))) == len(history) + 1
    call_command("audit", "partitions", "--model", "trackapp.Widget", "--ahead", "4")
    out = capsys.readouterr().out
    assert "trackapp.Widget (trackapp_widgetevent, by week):" in out
    assert len(partitioning.partitions(table_of(Widget))) == len(names) + 2
    # Small partitions are counted, not estimated (they were never analyzed).
    assert f"    {names[0]}: the beginning to " in out and ", 4 rows, " in out


def test_an_event_dated_after_the_boundary_is_refused_and_changes_nothing():
    Widget.objects.create(name="kept")
    write_event_at(Widget, datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC), id=1, name="late")
    before = schema(), all_rows(table_of(Widget))
    with pytest.raises(CommandError, match=r"holds events dated .* or later"):
        call_command("audit", "partition", "trackapp.Widget", "--by", "month")
    assert (schema(), all_rows(table_of(Widget))) == before
