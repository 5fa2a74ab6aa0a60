"""Counts: exact where counting is cheap, the planner's estimate where it would be slow."""

import re

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit_app import conf, counting
from audit_app.counting import RowCount
from audit_app.models import AuditEvent
from shop.models import Tag
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db


def event_table(model) -> str:
    return model.audit_event_model._meta.db_table


def forget_statistics(*models) -> None:
    """Leave these event tables as no VACUUM or ANALYZE has seen them (reltuples -1).

    TRUNCATE does that, and is rolled back with the test.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        # As the tables' owner may: history is append-only.
        cursor.execute("SET LOCAL session_replication_role = replica")
        for model in models:
            cursor.execute(f'TRUNCATE "{event_table(model)}"')
        # SET LOCAL lasts to the end of the test's transaction, not of this savepoint.
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
        for model in models:
            assert counting.tables_without_statistics(cursor, [event_table(model)])


def analyze(*models) -> None:
    """ANALYZE these event tables: only in transactional tests.

    ANALYZE writes a table's row count in place, so a rollback keeps it and later tests
    would plan with it; the flush after a transactional test (TRUNCATE) resets it.
    """
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f'ANALYZE "{event_table(model)}"')


def planner_rows(queryset) -> int:
    statement, params = queryset.order_by().values("event_id").query.sql_with_params()
    with connection.cursor() as cursor:
        return counting._plan(cursor, statement, params)["Plan Rows"]


def counts(ctx) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]


def add_widget_events(count: int, *, label: str = "update") -> None:
    """``count`` events of widgets that need not exist, written straight to the table."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{event_table(Widget)}" '
            "(audit_created_at, audit_label, id, name, size, data) "
            "SELECT clock_timestamp(), %s, g, 'w', g, '{}' FROM generate_series(1, %s) AS g",
            [label, count],
        )


def test_the_limit_setting_is_read_at_call_time(settings):
    assert conf.exact_count_limit() == 10_000
    settings.AUDIT_EXACT_COUNT_LIMIT = 50
    assert conf.exact_count_limit() == 50
    settings.AUDIT_EXACT_COUNT_LIMIT = -1
    assert conf.exact_count_limit() == 0


def test_a_small_history_without_statistics_is_counted_exactly():
    forget_statistics(Widget)
    for i in range(40):
        Widget.objects.create(name=str(i))
    # The planner alone invents ten pages of rows for a table never analyzed.
    assert planner_rows(AuditEvent.objects.across(Widget)) > 40
    assert AuditEvent.objects.across(Widget).row_count() == RowCount(40, exact=True)
    assert AuditEvent.objects.across(Widget).estimated_count() == 40
    everything = AuditEvent.objects.count()
    assert AuditEvent.objects.all().estimated_count() == everything
    inserts = AuditEvent.objects.filter(label="insert", obj_model="trackapp.Widget")
    assert inserts.row_count() == RowCount(40, exact=True)


def test_rows_invented_for_unanalyzed_tables_do_not_make_a_count_large(settings):
    settings.AUDIT_EXACT_COUNT_LIMIT = 100
    forget_statistics(Widget)
    for i in range(40):
        Widget.objects.create(name=str(i))
    assert planner_rows(AuditEvent.objects.across(Widget)) > 100
    assert AuditEvent.objects.across(Widget).row_count() == RowCount(40, exact=True)


def test_more_rows_than_the_limit_are_estimated_reading_at_most_limit_plus_one(settings):
    settings.AUDIT_EXACT_COUNT_LIMIT = 10
    forget_statistics(Widget)
    for i in range(30):
        Widget.objects.create(name=str(i))
    with CaptureQueriesContext(connection) as ctx:
        total = AuditEvent.objects.across(Widget).row_count()
    assert not total.exact and total.value > 10
    (count_sql,) = counts(ctx)
    assert count_sql.endswith("LIMIT 11) AS bounded")


@pytest.mark.django_db(transaction=True)
def test_a_large_estimate_with_statistics_runs_no_count(settings):
    """The event browser at 10M events, in small: an EXPLAIN and a catalog lookup."""
    settings.AUDIT_EXACT_COUNT_LIMIT = 10
    forget_statistics(Widget, Tag)
    add_widget_events(30)
    analyze(Widget)
    # Tag's event table has no statistics (as an event table no one writes to keeps
    # none): the rows the planner invents for it do not cause a count either.
    queryset = AuditEvent.objects.across(Widget, Tag)
    with CaptureQueriesContext(connection) as ctx:
        total = queryset.row_count()
    assert total == RowCount(planner_rows(queryset), exact=False)
    assert total.value >= 30
    assert counts(ctx) == []
    assert len(ctx.captured_queries) == 2


@pytest.mark.django_db(transaction=True)
def test_a_count_that_would_scan_a_large_table_is_left_to_the_estimate(settings, monkeypatch):
    """Few matching rows, but found only by reading the whole table: no count."""
    settings.AUDIT_EXACT_COUNT_LIMIT = 100
    monkeypatch.setattr(counting, "COUNT_COST_FLOOR", 100.0)
    add_widget_events(20_000)
    add_widget_events(5, label="delete")
    analyze(Widget)
    deletes = AuditEvent.objects.across(Widget).filter(label="delete")
    with CaptureQueriesContext(connection) as ctx:
        total = deletes.row_count()
    assert not total.exact and total.value <= 100
    assert counts(ctx) == []
    # Few rows found through an index are cheap, and counted.
    assert AuditEvent.objects.tracks(Widget(pk=7)).row_count() == RowCount(1, exact=True)


@pytest.mark.django_db(transaction=True)
def test_status_counts_small_tables_and_marks_estimates(capsys, settings):
    forget_statistics(Widget)
    for i in range(7):
        Widget.objects.create(name=str(i))
    call_command("audit", "status")
    assert "trackapp.Widget -> trackapp.WidgetEvent (7 events, " in capsys.readouterr().out
    settings.AUDIT_EXACT_COUNT_LIMIT = 3
    analyze(Widget)
    call_command("audit", "status")
    out = capsys.readouterr().out
    assert re.search(r"trackapp\.Widget -> trackapp\.WidgetEvent \(~7 events, [0-9.]+ MiB\)", out)


def test_row_count_reads_as_text():
    assert str(RowCount(7, exact=True)) == "7"
    assert str(RowCount(12_000, exact=False)) == "~12000"
