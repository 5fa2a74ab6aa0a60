"""Partitioning through the real ``makemigrations`` and ``migrate``: a tracked model with
history becomes partitioned, a new model starts partitioned, ``AUDIT_PARTITION`` sets
the default, a large table is left to ``audit partition``, a partitioned table never
goes back to plain, and unapplying keeps the table partitioned with its history.

The steps build on each other, in one project (see ``schema_project``).
"""

import pytest
from django.core.management import call_command

from audit_app import operations
from tests.schema_project import SchemaProject

PLAIN = """
from django.db import models

import audit_app


@audit_app.track()
class Account(models.Model):
    name = models.CharField(max_length=50)
    balance = models.IntegerField(default=0)


@audit_app.track()
class Ledger(models.Model):
    entry = models.CharField(max_length=50)


@audit_app.track()
class Memo(models.Model):
    text = models.CharField(max_length=50)
"""

# Account and Ledger partitioned by month; Journal is new, partitioned by day.
PARTITIONED = (
    PLAIN.replace(
        "@audit_app.track()\nclass Account", '@audit_app.track(partition="month")\nclass Account'
    ).replace(
        "@audit_app.track()\nclass Ledger", '@audit_app.track(partition="month")\nclass Ledger'
    )
    + """

@audit_app.track(partition="day")
class Journal(models.Model):
    line = models.CharField(max_length=50)
"""
)

# What the database says about each event table: its interval (None: plain).
LAYOUT = """
from audit_app import partitioning
tables = ["histapp_accountevent", "histapp_ledgerevent", "histapp_memoevent",
          "histapp_journalevent"]
print(json.dumps({t.split("_")[1]: partitioning.interval_of(t) for t in tables}))
"""

# Partitions of append-only event tables that would accept an UPDATE, DELETE or TRUNCATE.
UNGUARDED = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE c.relkind = 'r' AND NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid "
        "AND t.tgname = 'audit_append_only') AND i.inhparent::regclass::text LIKE 'histapp_%'"
    )
    print(json.dumps([name for (name,) in cursor.fetchall()]))
"""

ACCOUNT_HISTORY = """
account = Account.objects.get()
print(json.dumps([[e.label, e.data["name"], e.data["balance"]]
                  for e in AuditEvent.objects.tracks(account).order_by("event_id")]))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, django_db_blocker):
    with django_db_blocker.unblock():
        project = SchemaProject(tmp_path_factory.mktemp("partitions"))
    project.models(PLAIN)
    project.makemigrations()
    project.migrate()
    project.run(
        f"""
        from django.db import connection
        account = Account.objects.create(name="A", balance=1)
        account.balance = 2
        account.save()
        Memo.objects.create(text="m")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO histapp_ledgerevent (audit_created_at, audit_label, id, entry) "
                "SELECT now() - interval '1 minute' * g, 'insert', g, 'e' || g "
                "FROM generate_series(1, {operations.CONVERT_IN_MIGRATION + 1}) AS g"
            )
        print(json.dumps(account.pk))
        """
    )
    yield project
    with django_db_blocker.unblock():
        project.drop()


def test_declaring_partitions_generates_partition_event_table(project):
    project.models(PARTITIONED)
    project.makemigrations("--name", "partitions")
    ops = "".join(project.migration("0002").split()).replace('"', "'").lower()
    partition = "audit_app.operations.partitioneventtable(name='{}',interval='{}',)"
    assert ops.count("partitioneventtable(") == 3
    assert partition.format("accountevent", "month") in ops
    assert partition.format("ledgerevent", "month") in ops
    # A new model: its event table is created, then partitioned once its indexes and
    # triggers (the append-only one too) are in place.
    assert ops.index(partition.format("journalevent", "day")) > max(
        ops.index("migrations.createmodel(name='journalevent'"),
        ops.rindex("model_name='journalevent'"),
    )
    assert "memoevent" not in ops


def test_a_large_history_is_left_to_the_command_and_nothing_changes(project):
    failure = project.manage_fails("migrate", "--noinput")
    assert (
        f"histapp_ledgerevent holds more than {operations.CONVERT_IN_MIGRATION:,} events" in failure
    )
    assert "Run `manage.py audit partition histapp.Ledger --by month` first" in failure
    # The migration is one transaction: no table changed, Journal's was not kept.
    assert project.run(LAYOUT) == {
        "accountevent": None,
        "ledgerevent": None,
        "memoevent": None,
        "journalevent": None,
    }


def test_after_the_command_migrate_converts_the_rest(project):
    before = project.run(ACCOUNT_HISTORY)
    project.manage("audit", "partition", "histapp.Ledger", "--by", "month")
    project.migrate()
    assert project.run(LAYOUT) == {
        "accountevent": "month",
        "ledgerevent": "month",
        "memoevent": None,
        "journalevent": "day",
    }
    write = """
account = Account.objects.get()
account.balance = 3
account.save()
Journal.objects.create(line="first")
"""
    after = project.run(write + ACCOUNT_HISTORY)
    assert before == [["insert", "A", 1], ["update", "A", 2]]
    assert after == [*before, ["update", "A", 3]]
    assert "No changes detected" in project.makemigrations("--check", "--dry-run")
    # Journal's partitions refuse changes: it was partitioned after its append-only
    # trigger was made.
    assert project.run(UNGUARDED) == []


def test_a_partitioned_table_cannot_become_plain_again(project):
    project.models(
        PARTITIONED.replace(
            '@audit_app.track(partition="month")\nclass Account',
            "@audit_app.track()\nclass Account",
        )
    )
    error = project._child(["-m", "django", "makemigrations", "histapp", "--noinput"], fail=True)
    assert (
        "The events of histapp.Account are partitioned by month; a partitioned event table "
        "cannot become one plain table again." in error
    )
    assert "Hint: keep track(partition='month') (or another interval) on histapp.Account" in error
    assert not list(project.app.glob("migrations/0003*"))
    project.models(PARTITIONED)


def test_the_setting_partitions_models_that_do_not_say(project):
    with (project.folder / "histsettings.py").open("a") as settings:
        settings.write('\nAUDIT_PARTITION = "week"\n')
    project.makemigrations("--name", "weekly")
    ops = "".join(project.migration("0003").split()).replace('"', "'")
    assert ops.count("PartitionEventTable(") == 1
    assert "PartitionEventTable(name='memoevent',interval='week',)" in ops
    project.migrate()
    assert project.run(LAYOUT)["memoevent"] == "week"


def test_unapplying_keeps_the_table_partitioned_with_its_history(project):
    before = project.run(ACCOUNT_HISTORY)
    project.migrate("histapp", "0001")
    layout = project.run(LAYOUT)
    assert (layout["accountevent"], layout["memoevent"]) == ("month", "week")
    assert project.run(ACCOUNT_HISTORY) == before
    project.migrate()
    assert project.run(LAYOUT)["accountevent"] == "month"
    assert project.run(ACCOUNT_HISTORY) == before


@pytest.mark.django_db
def test_the_real_apps_need_no_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
