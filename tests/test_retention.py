"""Prune: batches, append-only tables included, on the record, contexts cleaned up."""

import contextlib
import datetime
import threading
import time
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

import audit_app
from audit_app.models import Bypass, Context
from audit_app.retention import prune
from tests.trackapp.models import Invoice, Widget

pytestmark = pytest.mark.django_db


def age_events(table, days):
    """Backdate events (owner-only: we skip the protection like prune does)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            f"UPDATE {table} SET audit_created_at = audit_created_at - interval '{days} days'"
        )
        cursor.execute(
            f"UPDATE audit_app_context SET created_at = created_at - interval '{days} days'"
        )
        cursor.execute("SET LOCAL session_replication_role = origin")


def test_prune_deletes_old_events_in_batches_and_records_it():
    with audit_app.context(user=None, batch="old"):
        Widget.objects.bulk_create([Widget(name=str(i)) for i in range(25)])
    age_events("trackapp_widgetevent", 40)
    with audit_app.context(user=None, batch="new"):
        Widget.objects.create(name="recent")
    cutoff = timezone.now() - datetime.timedelta(days=30)
    assert prune(cutoff, models=[Widget], dry_run=True) == {"trackapp.WidgetEvent": 25}
    assert Widget.audit_event_model.objects.count() == 26
    assert prune(cutoff, models=[Widget], batch_size=10) == {"trackapp.WidgetEvent": 25}
    assert list(Widget.audit_event_model.objects.values_list("name", flat=True)) == ["recent"]
    record = Bypass.objects.get(operation="PRUNE")
    assert (record.table_name, record.row_count) == ("trackapp_widgetevent", 25)
    assert "prune before" in record.reason


def test_prune_gets_past_append_only_protection_and_restores_it():
    Invoice.objects.create(amount=1)
    age_events("trackapp_invoiceevent", 40)
    counts = prune(timezone.now() - datetime.timedelta(days=1), models=[Invoice])
    assert counts == {"trackapp.InvoiceEvent": 1}
    Invoice.objects.create(amount=2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM trackapp_invoiceevent")


def test_prune_everything_also_removes_unreferenced_contexts(capsys):
    with audit_app.context(user=None, batch="old"):
        Widget.objects.create(name="a")
    age_events("trackapp_widgetevent", 40)
    assert Context.objects.count() == 1
    call_command(
        "audit",
        "prune",
        "--before",
        (timezone.now() - datetime.timedelta(days=1)).date().isoformat(),
    )
    out = capsys.readouterr().out
    assert "sanctioned way past append-only protection" in out
    assert "trackapp.WidgetEvent: 1 row deleted" in out
    assert "audit_app.Context: 1 row deleted" in out
    assert out.rstrip().endswith("2 rows deleted")
    # The prune's own record keeps the context it ran in (the command's).
    assert Context.objects.filter(metadata__command="audit").exists()


def test_prune_dry_run_says_what_would_be_deleted_in_plural_forms(capsys):
    with audit_app.context(user=None, batch="old"):
        Widget.objects.create(name="a")
        Widget.objects.create(name="b")
    age_events("trackapp_widgetevent", 40)
    cutoff = (timezone.now() - datetime.timedelta(days=1)).date().isoformat()
    call_command("audit", "prune", "--before", cutoff, "--dry-run")
    out = capsys.readouterr().out
    assert "trackapp.WidgetEvent: 2 rows would be deleted" in out
    assert "row(s)" not in out
    assert Widget.audit_event_model.objects.count() == 2


def test_prune_command_rejects_bad_dates():
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        call_command("audit", "prune", "--before", "2026-13-45")


@contextlib.contextmanager
def open_write(end: str = "ROLLBACK") -> Iterator[None]:
    """A widget inserted by another connection in a transaction held open (its events
    written, its locks held) for the block; then ``end`` (ROLLBACK or COMMIT)."""
    started, release = threading.Event(), threading.Event()

    def writer():
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute(
                    "INSERT INTO trackapp_widget (name, size, data, secret_token) "
                    "VALUES ('held', 0, '{}', '')"
                )
                started.set()
                release.wait(30)
                cursor.execute(end)
        finally:
            other.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(10)
        yield
    finally:
        release.set()
        thread.join(30)


@pytest.mark.django_db(transaction=True)
def test_prune_does_not_wait_for_writers_of_the_table():
    """A writer holds an open transaction that inserted events; prune goes on at once.

    Disabling the protection trigger would wait for that transaction (its lock
    conflicts with the writer's); skipping it for the batch's transaction does not.
    """
    Widget.objects.bulk_create([Widget(name=str(i)) for i in range(5)])
    age_events("trackapp_widgetevent", 40)
    with open_write("ROLLBACK"):
        with connection.cursor() as cursor:
            # Were prune to wait for the writer, this would fail instead of hanging.
            cursor.execute("SET lock_timeout = '2s'")
        try:
            cutoff = timezone.now() - datetime.timedelta(days=1)
            counts = prune(cutoff, models=[Widget], batch_size=2)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    assert counts == {"trackapp.WidgetEvent": 5}
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM trackapp_widgetevent")


PRUNER = "audit_test_pruner"


@pytest.fixture
def owner_without_replication_role():
    """A role that may alter the tables (it has their owner's privileges) but may not
    set session_replication_role: prune must disable the protection trigger. Yields a
    context manager giving the current thread a connection as that role."""
    import functools

    from tests.reliability.conftest import database_alias

    owner = connection.settings_dict["USER"]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {PRUNER}")
        cursor.execute(f"CREATE ROLE {PRUNER} LOGIN NOSUPERUSER IN ROLE {owner}")
    try:
        yield functools.partial(database_alias, "pruner", USER=PRUNER, PASSWORD="")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                [PRUNER],
            )
            cursor.execute(f"DROP ROLE {PRUNER}")


@pytest.mark.django_db(transaction=True)
def test_prune_without_the_replication_role_holds_writers_up_only_briefly(
    owner_without_replication_role,
):
    """A long open transaction writes the table: disabling the trigger must wait for
    it, but its lock request gives way every 200 ms, so other writers go on."""
    from audit_app.batch_delete import may_skip_triggers

    with owner_without_replication_role() as pruner_connection, pruner_connection.cursor() as c:
        assert not may_skip_triggers(c)
    Widget.objects.bulk_create([Widget(name=str(i)) for i in range(30)])
    age_events("trackapp_widgetevent", 40)
    outcome = []

    def pruner():
        with owner_without_replication_role():
            cutoff = timezone.now() - datetime.timedelta(days=1)
            outcome.append(prune(cutoff, models=[Widget], batch_size=7, using="pruner"))

    pruning = threading.Thread(target=pruner)
    latencies = []
    with open_write("COMMIT"):
        pruning.start()
        for i in range(10):
            began = time.monotonic()
            Widget.objects.create(name=f"during {i}")
            latencies.append(time.monotonic() - began)
            time.sleep(0.05)
        assert pruning.is_alive()  # still waiting for the long transaction
    pruning.join(30)
    assert outcome == [{"trackapp.WidgetEvent": 30}]
    # Without the short lock waits each would wait for the long transaction to end.
    assert max(latencies) < 0.5, latencies
    assert Widget.audit_event_model.objects.count() == 10 + 1
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM trackapp_widgetevent")
