"""Prune by partition: whole partitions go, the remainder in batches, on the record; and
the context rows left without events go without probing every event table."""

from __future__ import annotations

import datetime
import json
import threading
import time
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

import audit_app
from audit_app import context_cleanup, partitioning, seal_keys
from audit_app import partition_sql as psql
from audit_app import retention_sql as rsql
from audit_app.models import Bypass, Context, Seal
from audit_app.retention import prune
from audit_app.sealing import seal
from audit_app.verification import verify
from shop.models import Customer, Order
from tests.reliability.oracle import reconcile, run_load
from tests.sealing_helpers import KEY
from tests.trackapp.models import Widget

EVENTS = "shop_orderevent"
MONTH = datetime.timedelta(days=31)


def month_start(moment: datetime.datetime, back: int) -> datetime.datetime:
    start = psql.floor(moment, "month")
    for _ in range(back):
        start = psql.floor(start - datetime.timedelta(days=1), "month")
    return start


class Timeline:
    """Times of a scenario: an old month (wholly before the cut-off), the month that
    straddles the cut-off, a time no partition covers, and the cut-off itself."""

    def __init__(self) -> None:
        now = timezone.now()
        self.old = month_start(now, 3) + datetime.timedelta(days=5)
        self.straddled = month_start(now, 1)
        self.cutoff = self.straddled + datetime.timedelta(days=10)
        self.before = self.straddled + datetime.timedelta(days=2)
        self.after = self.straddled + datetime.timedelta(days=20)
        self.stray = month_start(now, 6) + datetime.timedelta(days=3)


def orders(count: int, **context) -> list[int]:
    """Order events written in a context of their own; their ids."""
    customer = Customer.objects.create(name="c", email=f"{json.dumps(context)}@x.test")
    with audit_app.context(user=None, **context):
        for i in range(count):
            Order.objects.create(customer=customer, notes=str(i))
    return list(
        Order.audit_event_model.objects.filter(
            audit_context__metadata__contains=context
        ).values_list("pk", flat=True)
    )


def as_owner(*statements: str, params: Any = None) -> None:
    """Run ``statements`` with append-only protection skipped, as the tables' owner may
    (and back on afterwards: SET LOCAL outlives a savepoint)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            cursor.execute(statement, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


def move(ids: list[int], when: datetime.datetime) -> None:
    """Give events (and their context rows) the time ``when``, as if written then."""
    as_owner(
        f"UPDATE {EVENTS} SET audit_created_at = %(when)s WHERE audit_id = ANY(%(ids)s)",
        "UPDATE audit_app_context SET created_at = %(when)s WHERE id IN "
        f"(SELECT audit_context_id FROM {EVENTS} WHERE audit_id = ANY(%(ids)s))",
        params={"when": when, "ids": ids},
    )


def monthly_layout() -> None:
    """One partition per month, as a table partitioned from the start has: the test
    database's table was converted on migrate, so its (empty) history partition holds
    everything before next month. It is set aside (``partitions_restored`` puts it back
    in transactional tests; the others roll back)."""
    for partition in partitioning.partitions(EVENTS):
        if partition.lower is None and not partition.default:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {partition.name})")
                assert cursor.fetchone()[0]
                cursor.execute(f"ALTER TABLE {EVENTS} DETACH PARTITION {partition.name}")
                cursor.execute(f"ALTER TABLE {partition.name} RENAME TO {partition.name}_aside")
    partitioning.ensure_partitions(EVENTS)


def scenario(t: Timeline) -> dict[str, list[int]]:
    """Events in an old partition, on both sides of the cut-off in the straddling one,
    in the safety net, and now; partitions made for the old times."""
    monthly_layout()
    groups = {
        "old": orders(3, group="old"),
        "before": orders(2, group="before"),
        "after": orders(2, group="after"),
        "now": orders(1, group="now"),
    }
    move(groups["old"], t.old)
    move(groups["before"], t.before)
    move(groups["after"], t.after)
    partitioning.ensure_partitions(EVENTS)
    groups["stray"] = orders(1, group="stray")
    move(groups["stray"], t.stray)  # after the partitions were made: the safety net
    return groups


def names(table: str = EVENTS) -> set[str]:
    return {p.name for p in partitioning.partitions(table)}


def event_ids() -> set[int]:
    return set(Order.audit_event_model.objects.values_list("pk", flat=True))


@pytest.fixture
def partitions_restored():
    """Transactional tests keep the partitions they make: drop them afterwards."""
    before = partitioning.partitions(EVENTS)
    yield
    with connection.cursor() as cursor:
        for name in names() - {p.name for p in before}:
            cursor.execute(f"ALTER TABLE {EVENTS} DETACH PARTITION {name}")
            cursor.execute(f"DROP TABLE {name}")
        for partition in before:
            if partition.name not in names():
                cursor.execute(f"ALTER TABLE {partition.name}_aside RENAME TO {partition.name}")
                cursor.execute(
                    f"ALTER TABLE {EVENTS} ATTACH PARTITION {partition.name} "
                    + psql.range_clause(partition.lower, partition.upper)
                )
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE %s AND relkind = 'r'",
            [f"{EVENTS}%{rsql.ARCHIVED_SUFFIX}"],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP TABLE {name}")


# -- whole partitions and the remainder ------------------------------------------------------


@pytest.mark.django_db
def test_prune_drops_whole_partitions_and_deletes_the_remainder_on_the_record():
    t = Timeline()
    groups = scenario(t)
    old_partition = psql.partition_name(EVENTS, month_start(t.old, 0))
    assert old_partition in names()
    kept = set(groups["after"]) | set(groups["now"])

    counts = prune(t.cutoff, models=[Order], batch_size=1)

    assert counts == {"shop.OrderEvent": 3 + 2 + 1}
    assert old_partition not in names()
    assert psql.partition_name(EVENTS, t.straddled) in names()
    assert event_ids() == kept
    records = {r.reason.split(": ", 1)[1]: r for r in Bypass.objects.filter(operation="PRUNE")}
    dropped = next(r for reason, r in records.items() if old_partition in reason)
    assert (dropped.table_name, dropped.row_count) == (EVENTS, 3)
    assert f"{month_start(t.old, 0):%Y-%m-%d} to" in dropped.reason
    assert dropped.reason.startswith(f"prune before {t.cutoff.isoformat()}")
    assert (records["deleted in batches"].table_name, records["deleted in batches"].row_count) == (
        EVENTS,
        3,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [rsql.archived_name(old_partition)])
        assert cursor.fetchone()[0] is None
    # Protection is back: the straddling partition and the parent refuse deletes.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Order.audit_event_model.objects.all().delete()


@pytest.mark.django_db
def test_prune_archive_detaches_keeps_and_says_how_to_dump(capsys):
    t = Timeline()
    groups = scenario(t)
    old_partition = psql.partition_name(EVENTS, month_start(t.old, 0))
    archived = rsql.archived_name(old_partition)

    call_command("audit", "prune", "--before", t.cutoff.isoformat(), "--archive")

    out = capsys.readouterr().out
    assert f"detached partition {old_partition}" in out
    assert f"pg_dump --format=custom -t {archived} --file={archived}.dump" in out
    assert f"-c 'DROP TABLE {archived}'" in out
    assert old_partition not in names() and archived not in names()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT audit_id FROM {archived} ORDER BY 1")
        assert [row[0] for row in cursor.fetchall()] == sorted(groups["old"])
        # A context row an archived event points at stays until the table is dropped.
        cursor.execute(f"SELECT count(*) FROM audit_app_context WHERE id IN "
                       f"(SELECT audit_context_id FROM {archived})")  # fmt: skip
        assert cursor.fetchone()[0] == 1
    record = Bypass.objects.get(reason__contains=archived)
    assert record.row_count == 3
    for statement in (
        f"INSERT INTO {archived} SELECT * FROM {archived}",
        f"DELETE FROM {archived}",
    ):
        with pytest.raises(DatabaseError, match="refused"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement)
    # audit partitions lists live partitions only, and nothing is amiss.
    call_command("audit", "partitions", "--model", "shop.Order")
    listing = capsys.readouterr().out
    assert old_partition not in listing and archived not in listing
    assert partitioning.problems(EVENTS) == []


@pytest.mark.django_db
def test_prune_dry_run_says_what_would_go_and_changes_nothing(capsys):
    t = Timeline()
    scenario(t)
    old_partition = psql.partition_name(EVENTS, month_start(t.old, 0))
    partitions_before, events_before = names(), event_ids()
    contexts_before = Context.objects.count()

    call_command("audit", "prune", "--before", t.cutoff.isoformat(), "--dry-run", "--archive")

    out = capsys.readouterr().out
    assert f"shop.OrderEvent: would detach partition {old_partition}" in out
    assert "(3 events)" in out
    assert "shop.OrderEvent: 6 rows would be deleted" in out
    assert (names(), event_ids(), Context.objects.count()) == (
        partitions_before,
        events_before,
        contexts_before,
    )
    assert not Bypass.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--model", "shop.Nothing"], "Unknown model 'shop.Nothing'"),
        (["--model", "auth.Group"], "auth.Group is not tracked"),
        (["--batch-size", "0"], "--batch-size must be 1 or more"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(arguments, message):
    t = Timeline()
    scenario(t)
    partitions_before, events_before = names(), event_ids()
    with pytest.raises(CommandError, match=message):
        call_command("audit", "prune", "--before", t.cutoff.isoformat(), *arguments)
    future = (timezone.now() + MONTH).date().isoformat()
    with pytest.raises(CommandError, match="is in the future"):
        call_command("audit", "prune", "--before", future)
    assert (names(), event_ids()) == (partitions_before, events_before)
    assert not Bypass.objects.exists()


# -- sealed history ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_prune_by_partition_of_sealed_history_leaves_records_verify_accepts(
    settings, partitions_restored
):
    settings.AUDIT_SEAL_KEY = KEY
    t = Timeline()
    groups = scenario(t)
    seal()
    counts = prune(t.cutoff)
    assert counts["shop.OrderEvent"] == 6
    records = Seal.objects.filter(kind=Seal.PRUNE, table_name=EVENTS)
    pruned = [
        i for r in records for first, last in r.details["ids"] for i in range(first, last + 1)
    ]
    assert sorted(pruned) == sorted(groups["old"] + groups["before"] + groups["stray"])
    report = verify()
    assert report.ok, report.findings
    assert report.pruned == 6
    assert seal_keys.configured()


# -- writers during a prune ------------------------------------------------------------------


class OrderWriter(threading.Thread):
    """Saves orders one by one in request-like contexts until told to stop."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.saved: list[int] = []
        self.errors: list[str] = []
        self.customer = Customer.objects.create(name="w", email="writer@x.test")

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                with audit_app.context(user=None, request_id=f"w{len(self.saved)}"):
                    order = Order.objects.create(customer=self.customer, notes="live")
                self.saved.append(order.pk)
        except Exception as exc:  # every failure counts as a writer error
            self.errors.append(repr(exc))
        finally:
            connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_prune_under_concurrent_writes_loses_nothing_outside_the_range(partitions_restored):
    """Orders are saved and the load oracle's writers work while the prune runs: the
    oracle reconciles exactly, every event at or after the cut-off is still there."""
    t = Timeline()
    groups = scenario(t)
    survivors = set(groups["after"]) | set(groups["now"])
    writer = OrderWriter()
    outcome: list = []

    def oracle() -> None:
        try:
            outcome.append(run_load(2, 3.0, seed=11))
        finally:
            connections.close_all()

    load = threading.Thread(target=oracle)
    writer.start()
    load.start()
    time.sleep(0.5)
    counts = prune(t.cutoff, batch_size=1)
    load.join(30)
    writer.stop.set()
    writer.join(30)

    assert counts["shop.OrderEvent"] == 6
    assert writer.errors == [] and len(writer.saved) > 5
    written = set(
        Order.audit_event_model.objects.filter(audit_obj_id__in=writer.saved).values_list(
            "pk", flat=True
        )
    )
    assert survivors | written <= event_ids()
    assert not Order.audit_event_model.objects.filter(audit_created_at__lt=t.cutoff).exists()
    assert len(written) >= len(writer.saved)
    report = reconcile(outcome[0])
    # The prune's own bypass records are not the oracle writers'; everything else matches.
    unexpected = report.mismatches.pop("unexpected bypass records", [])
    assert all(line.startswith("prune before") for line in unexpected)
    assert report.mismatch_count == 0, report.summary()
    assert report.events_checked == report.expected_events > 20


# -- context rows --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_context_rows_still_referenced_stay_and_the_rest_go():
    t = Timeline()
    groups = scenario(t)
    # A request that spanned the cut-off: its context row is older than its newest event.
    spanning = orders(2, group="spanning")
    move(spanning, t.before)
    as_owner(f"UPDATE {EVENTS} SET audit_created_at = %s WHERE audit_id = %s",
             params=[t.after, spanning[1]])  # fmt: skip
    by_group = dict(
        Context.objects.exclude(metadata__group=None).values_list("metadata__group", "id")
    )

    prune(t.cutoff)

    left = set(Context.objects.values_list("id", flat=True))
    assert {by_group["spanning"], by_group["after"], by_group["now"]} <= left
    assert not {by_group["old"], by_group["before"], by_group["stray"]} & left
    assert set(groups["after"]) | {spanning[1]} <= event_ids()


@pytest.mark.django_db
def test_context_rows_made_within_a_day_stay_whatever_the_date():
    """A transaction of a request may still be writing with a context row made two
    hours ago: a prune up to an hour ago deletes those events, not that row."""
    two_hours_ago = timezone.now() - datetime.timedelta(hours=2)
    recent = orders(2, group="recent")
    move(recent, two_hours_ago)
    context = Context.objects.get(metadata__group="recent").pk

    prune(timezone.now() - datetime.timedelta(hours=1))

    assert not set(recent) & event_ids()
    assert Context.objects.filter(pk=context).exists()


@pytest.mark.django_db
def test_context_references_are_read_by_index_ranges_not_per_context():
    t = Timeline()
    scenario(t)
    Widget.objects.create(name="w")
    with connection.cursor() as cursor:
        ranges = context_cleanup.candidate_ranges(cursor, t.cutoff)
        assert ranges
        statement, params = rsql.referenced_sql(context_cleanup.referring_tables(cursor), ranges)
        cursor.execute("SET LOCAL enable_seqscan = off")  # tiny tables: show the index path
        cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", params)
        plan = json.dumps(cursor.fetchone()[0])
    scanned = {
        node["Relation Name"] for node in _nodes(json.loads(plan)) if "Relation Name" in node
    }
    assert {EVENTS + "_default", "trackapp_widgetevent", "audit_app_bypass"} <= scanned
    assert "audit_app_context" not in scanned  # no probe per context row
    for node in _nodes(json.loads(plan)):
        # Each table is read by a range of its context column's index, once.
        assert node["Node Type"] not in ("Seq Scan", "Nested Loop") and "Subplan Name" not in node
        if node["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
            assert ">=" in node["Index Cond"] and "<=" in node["Index Cond"]


def _nodes(plan):
    if isinstance(plan, list):
        for item in plan:
            yield from _nodes(item)
    elif isinstance(plan, dict):
        if "Node Type" in plan:
            yield plan
        for value in plan.values():
            if isinstance(value, (list, dict)):
                yield from _nodes(value)
