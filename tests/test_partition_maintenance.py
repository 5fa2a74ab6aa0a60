"""Partitions made ahead, interval changes, strays in the safety net, and what status,
the system check and ``migrate`` say and do about them."""

import datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit_app import partitioning
from audit_app.checks import check_partitions
from tests.partition_helpers import all_rows, partition, table_of, where_rows_are, write_event_at
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db

TABLE = table_of(Widget)


def at(text):
    return datetime.datetime.fromisoformat(text)


def ranges(names):
    """(lower, upper) of the partitions ``names``, as dates."""
    found = {p.name: p for p in partitioning.partitions(TABLE)}
    return [(found[n].lower.date().isoformat(), found[n].upper.date().isoformat()) for n in names]


def convert_long_ago(interval):
    """Widget's events partitioned by ``interval`` in 2024: partitions far behind now."""
    partitioning.convert(TABLE, interval, concurrently=False, now=at("2024-01-10T12:00+00:00"))


@pytest.mark.parametrize(
    "interval, now, ahead, expected",
    [
        (
            "month",
            "2026-11-15T08:00+00:00",
            2,
            [
                ("2026-11-01", "2026-12-01"),
                ("2026-12-01", "2027-01-01"),
                ("2027-01-01", "2027-02-01"),
            ],
        ),
        # Midnight in UTC+2 is still December in UTC.
        (
            "month",
            "2027-01-01T00:30+02:00",
            1,
            [("2026-12-01", "2027-01-01"), ("2027-01-01", "2027-02-01")],
        ),
        ("month", "2027-02-28T23:59+00:00", 0, [("2027-02-01", "2027-03-01")]),
        # Weeks start on Monday: Thursday 31 December 2026 is in the week of the 28th.
        (
            "week",
            "2026-12-31T10:00+00:00",
            2,
            [
                ("2026-12-28", "2027-01-04"),
                ("2027-01-04", "2027-01-11"),
                ("2027-01-11", "2027-01-18"),
            ],
        ),
        (
            "week",
            "2027-01-03T23:59+00:00",
            1,
            [("2026-12-28", "2027-01-04"), ("2027-01-04", "2027-01-11")],
        ),
        ("week", "2027-01-04T00:00+00:00", 0, [("2027-01-04", "2027-01-11")]),
        (
            "day",
            "2026-12-31T12:00+00:00",
            2,
            [
                ("2026-12-31", "2027-01-01"),
                ("2027-01-01", "2027-01-02"),
                ("2027-01-02", "2027-01-03"),
            ],
        ),
        (
            "day",
            "2028-02-28T05:00+00:00",
            1,
            [("2028-02-28", "2028-02-29"), ("2028-02-29", "2028-03-01")],
        ),
    ],
)
def test_ensure_partitions_makes_the_current_and_next_intervals(interval, now, ahead, expected):
    convert_long_ago(interval)
    before = partitioning.partitions(TABLE)
    created = partitioning.ensure_partitions(TABLE, now=at(now), ahead=ahead)
    assert ranges(created) == expected
    assert created == [f"{TABLE}_p{lower.replace('-', '')}" for lower, _ in expected]
    # The intervals between the last maintenance and now stay without partitions of
    # their own: nothing was written then (a row would be a stray, see below).
    assert len(partitioning.partitions(TABLE)) == len(before) + len(expected)
    # Idempotent: a second run finds everything in place.
    assert partitioning.ensure_partitions(TABLE, now=at(now), ahead=ahead) == []
    # Nothing prepared for the next interval is a problem, until it exists.
    assert bool(partitioning.problems(TABLE, now=at(now))) is (ahead == 0)


def test_a_new_interval_fills_only_the_gaps():
    # By month, ready until April 2027; then by week.
    partitioning.convert(TABLE, "month", concurrently=False, now=at("2027-01-10T12:00+00:00"))
    assert ranges(p.name for p in partitioning.partitions(TABLE)[1:-1]) == [
        ("2027-02-01", "2027-03-01"),
        ("2027-03-01", "2027-04-01"),
    ]
    with connection.cursor() as cursor:
        # What PartitionEventTable does to a partitioned table when the interval changes.
        cursor.execute(f"COMMENT ON TABLE {TABLE} IS 'audit history, partitioned by week'")
    assert partitioning.interval_of(TABLE) == "week"
    # Thursday 25 March: this week and the next two, the month partition covers until
    # Thursday 1 April; the first week partition starts there.
    created = partitioning.ensure_partitions(TABLE, now=at("2027-03-25T12:00+00:00"))
    assert ranges(created) == [("2027-04-01", "2027-04-05"), ("2027-04-05", "2027-04-12")]
    assert partitioning.ensure_partitions(TABLE, now=at("2027-03-25T12:00+00:00")) == []


def stray_history():
    """Widget's events partitioned since a while, with events written at times no
    partition covers (maintenance stopped for months) and some that have partitions."""
    partition(Widget)
    Widget.objects.create(name="now")
    moments = [
        "2025-03-01T00:00+00:00",  # the converted history's partition
        "2027-06-15T10:00+00:00",
        "2027-06-30T23:59:59.999999+00:00",
        "2027-07-01T00:00+00:00",
        "2031-12-31T23:00+00:00",
    ]
    for number, moment in enumerate(moments):
        write_event_at(Widget, at(moment), id=100 + number, name=f"stray {number}")


def test_strays_are_reported_and_moved_into_partitions_of_their_own(capsys):
    stray_history()
    default = f"{TABLE}_default"
    assert where_rows_are(TABLE)[default] == 4
    found = [f"{TABLE} has events in its safety net {default}"]
    assert partitioning.problems(TABLE) == found
    assert [(w.id, w.msg) for w in check_partitions()] == [
        ("audit_app.W012", f"{found[0]} (database 'default').")
    ]
    with pytest.raises(CommandError, match=r"1 problem.*audit partitions"):
        call_command("audit", "status")
    assert f"PROBLEM: {found[0]}" in capsys.readouterr().out
    before = all_rows(TABLE)

    call_command("audit", "partitions")

    assert all_rows(TABLE) == before
    placed = where_rows_are(TABLE)
    assert default not in placed
    assert {
        name: placed[name]
        for name in placed
        if "2027060" in name or "2027070" in name or "2031" in name
    } == {
        f"{TABLE}_p20270601": 2,
        f"{TABLE}_p20270701": 1,
        f"{TABLE}_p20311201": 1,
    }
    assert ranges([f"{TABLE}_p20270601", f"{TABLE}_p20311201"]) == [
        ("2027-06-01", "2027-07-01"),
        ("2031-12-01", "2032-01-01"),
    ]
    assert partitioning.problems(TABLE) == [] and check_partitions() == []
    call_command("audit", "status")
    assert "audit history: all installed" in capsys.readouterr().out
    # The new partitions refuse changes like the others.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {TABLE}_p20311201")


def test_a_missing_next_partition_is_reported_and_migrate_makes_it(capsys):
    convert_long_ago("month")
    missing = partitioning.problems(TABLE)
    assert len(missing) == 1 and "has no partition for" in missing[0]
    assert [w.id for w in check_partitions()] == ["audit_app.W012"]
    with pytest.raises(CommandError, match="1 problem"):
        call_command("audit", "status")
    call_command("migrate", verbosity=0)
    assert partitioning.problems(TABLE) == [] and check_partitions() == []
    Widget.objects.create(name="after")
    assert f"{TABLE}_default" not in where_rows_are(TABLE)


def test_a_table_partitioned_by_another_tool_is_left_alone():
    """Without our comment (pg_partman, or by hand), a partitioned event table's
    partitions are not ours to make, move or report, and it is not converted again."""
    partition(Widget)
    with connection.cursor() as cursor:
        cursor.execute(f"COMMENT ON TABLE {TABLE} IS NULL")
    before = [p.name for p in partitioning.partitions(TABLE)]

    assert partitioning.interval_of(TABLE) is None
    assert partitioning.ensure_partitions(TABLE, now=at("2031-01-15T00:00+00:00")) == []
    assert partitioning.problems(TABLE, now=at("2031-01-15T00:00+00:00")) == []
    with pytest.raises(CommandError, match="partitioned by another tool"):
        call_command("audit", "partition", "trackapp.Widget", "--by", "month")
    assert [p.name for p in partitioning.partitions(TABLE)] == before
