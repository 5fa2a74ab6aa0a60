"""Prune: batches, append-only tables included, on the record, contexts cleaned up."""

import datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

import audit_app
from audit_app.models import Bypass, Context
from audit_app.retention import prune
from tests.trackapp.models import Invoice, Widget

pytestmark = pytest.mark.django_db


def age_events(table, days):
    """Backdate events (owner-only: we disable the protection like prune does)."""
    with connection.cursor() as cursor:
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
    from django.db import DatabaseError, transaction

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
