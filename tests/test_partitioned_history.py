"""Previous versions on a partitioned event table (the shop's orders, by month).

An object's versions may lie in any partition: its history carried over into the
partition of everything before the conversion, a partition made ahead, the default
partition (a clock far ahead). Diffs, on pages and in exports, compare each event with
the version just before it wherever that is, and the lookups stay within the
partitions they need.
"""

import csv
import datetime
import io
import json

import pytest
from django.db import connection

from audit_app import export, partitioning
from audit_app.models import AuditEvent
from shop.models import Customer, Order

pytestmark = pytest.mark.django_db

TABLE = "shop_orderevent"
UTC = datetime.timezone.utc


def add_version(order, when, notes):
    """A copy of the order's newest event at ``when`` with other notes, written
    straight into the event table."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {TABLE} LIMIT 0")
        columns = [c.name for c in cursor.description if c.name != "audit_id"]
        values = ["%s" if c in ("audit_created_at", "notes") else f'"{c}"' for c in columns]
        names = ", ".join(f'"{c}"' for c in columns)
        cursor.execute(
            f"INSERT INTO {TABLE} ({names}) "
            f"SELECT {', '.join(values)} FROM {TABLE} WHERE id = %s "
            "ORDER BY audit_created_at DESC, audit_id DESC LIMIT 1",
            [when, notes, order.pk],
        )


@pytest.fixture
def spread_order():
    """An order whose versions lie in three partitions, and a neighbour's in between."""
    assert partitioning.interval_of(TABLE) == "month"
    customer = Customer.objects.create(name="c", email="c@example.org")
    order = Order.objects.create(customer=customer, notes="today")
    other = Order.objects.create(customer=customer, notes="other")
    ahead = [p for p in partitioning.partitions(TABLE) if p.lower and not p.default][-1]
    add_version(order, datetime.datetime(2019, 5, 1, tzinfo=UTC), "ancient")
    add_version(other, datetime.datetime(2019, 6, 1, tzinfo=UTC), "other, later")
    add_version(order, ahead.lower + datetime.timedelta(days=3), "ahead")
    add_version(order, datetime.datetime(2100, 1, 1, tzinfo=UTC), "far ahead")
    order.notes = "changed today"
    order.save()
    return order


def expected_notes(order):
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT notes FROM {TABLE} WHERE id = %s ORDER BY audit_created_at, audit_id",
            [order.pk],
        )
        notes = [row[0] for row in cursor.fetchall()]
    return list(zip([None, *notes[:-1]], notes, strict=True))


def test_each_version_is_compared_with_the_one_before_it_in_any_partition(spread_order):
    events = list(AuditEvent.objects.tracks(spread_order).order_by("created_at", "event_id"))
    found = [
        (e.diff["notes"][0] if e.diff and "notes" in e.diff else None, e.raw_data["notes"])
        for e in events
    ]
    expected = expected_notes(spread_order)
    # The first version has no diff; the two versions of today both came from the
    # object's own history, the neighbour's version never.
    assert found == expected
    assert [n for n, _ in expected] == [None, "ancient", "today", "changed today", "ahead"]


def test_the_export_compares_the_same_versions(spread_order):
    queryset = AuditEvent.objects.tracks(spread_order).order_by("created_at", "event_id")
    rows = csv.DictReader(io.StringIO(b"".join(export.stream_csv(queryset)).decode()))
    diffs = [json.loads(row["diff"]) if row["diff"] else None for row in rows]
    olds = [d["notes"][0] if d and "notes" in d else None for d in diffs]
    assert olds == [old for old, _ in expected_notes(spread_order)]


def _scans(plan, prefix):
    """Scans of relations aliased ``prefix``* that ran, and the node types above them."""
    found, kinds = [], set()
    for child in plan.get("Plans", ()):
        if child.get("Alias", "").startswith(prefix) and child["Actual Loops"]:
            found.append(child["Relation Name"])
            kinds.add(plan["Node Type"])
        more, more_kinds = _scans(child, prefix)
        found += more
        kinds |= more_kinds
    return found, kinds


def test_a_pages_diffs_read_only_the_partitions_they_need(spread_order, sql_log):
    list(AuditEvent.objects.tracks(spread_order))
    statement = next(q["sql"] for q in sql_log.captured_queries if "AS cur" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}")
        plan = cursor.fetchone()[0][0]["Plan"]
    current, _ = _scans(plan, "cur")
    previous, above = _scans(plan, "p")
    partitions = partitioning.partitions(TABLE)
    # The page's events are looked up by id and time: only the partitions holding them.
    assert len(set(current)) == 3 < len(partitions)
    # Each previous version is read from the partitions in order, newest first, not
    # from a merge of every partition before the event.
    assert "Merge Append" not in above
    assert len(previous) < len(current) * len(partitions)


def test_a_newest_first_page_reads_recent_partitions_first(sql_log):
    """A page of the newest events is first read below a bound of the recent intervals
    (planned over a few partitions); when that holds fewer events than the page, the
    page is read unbounded. Either way it is the page an unbounded read returns."""
    customer = Customer.objects.create(name="c", email="c@example.org")
    orders = [Order.objects.create(customer=customer, notes=str(n)) for n in range(3)]
    for order in orders:
        add_version(order, datetime.datetime(2019, 5, 1, tzinfo=UTC), "ancient")
    newest = AuditEvent.objects.across(Order)

    def unbounded(size):
        # values() is read as it is: the oracle.
        return list(newest.values_list("id", flat=True)[:size])

    def pages(size):
        return [
            q["sql"]
            for q in sql_log.captured_queries
            if q["sql"].endswith(f'"event_id" DESC LIMIT {size}')
        ]

    assert [e.id for e in newest[:2]] == unbounded(2)
    assert ['"created_at" >=' in page for page in pages(2)] == [True, False]  # page, oracle

    page = [e.id for e in newest[:5]]
    assert page == unbounded(5) and len(page) == 5
    assert ['"created_at" >=' in page for page in pages(5)] == [True, False, False]
