"""Several databases: each one records, partitions and reads its own history.

A project that routes models (or tenants) to separate databases, on one server or on
several, keeps each database's events in that database, written in the same
transaction by its own triggers, with the context of the code that wrote them.
"""

import csv

import pytest
from django.core.management import call_command

import audit_app
from audit_app import partitioning
from audit_app.models import AuditEvent
from shop.models import Customer, Order

pytestmark = pytest.mark.django_db(databases=["default", "second"])


def test_each_database_records_its_own_writes_with_their_context():
    with audit_app.context(reason="tenant import"):
        here = Customer.objects.create(name="Here", email="here@example.org")
        there = Customer.objects.using("second").create(name="There", email="there@example.org")
        Customer.objects.using("second").filter(pk=there.pk).update(phone="555")

    mine = AuditEvent.objects.all()
    theirs = AuditEvent.objects.using("second").order_by("event_id")
    assert [(e.obj_id, e.label) for e in mine] == [(str(here.pk), "insert")]
    assert [(e.label, e.data["name"], e.data["phone"]) for e in theirs] == [
        ("insert", "There", ""),
        ("update", "There", "555"),
    ]
    assert {e.context.metadata["reason"] for e in theirs} == {"tenant import"}
    assert theirs[1].diff == {"phone": ["", "555"]}


def test_each_database_has_its_own_partitions():
    """``migrate`` prepares the partitions of every database it migrates."""
    for alias in ("default", "second"):
        found = partitioning.partitions(Order.audit_event_model._meta.db_table, alias)
        assert sum(not p.default for p in found) >= 3
        assert partitioning.problems(Order.audit_event_model._meta.db_table, using=alias) == []


def test_the_export_command_reads_where_history_is_read(settings, tmp_path):
    """``audit export`` follows ``AUDIT_READ_DATABASE`` unless ``--database`` says
    otherwise; the other commands keep the default database."""
    Customer.objects.create(name="Primary", email="p@example.org")
    elsewhere = Customer.objects.using("second").create(name="Elsewhere", email="e@example.org")
    Customer.objects.using("second").filter(pk=elsewhere.pk).update(phone="555")
    settings.AUDIT_READ_DATABASE = "second"

    def actions(*args):
        target = tmp_path / "out.csv"
        call_command("audit", *args, "export", "--output", str(target))
        with target.open() as rows:
            return [row["action"] for row in csv.DictReader(rows)]

    assert actions() == ["changed", "created"]
    assert actions("--database", "default") == ["created"]
