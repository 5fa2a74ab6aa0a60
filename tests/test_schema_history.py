"""History outlives the schema: a tracked model loses, renames, retypes and gains fields
through the real ``makemigrations`` and ``migrate``, and every recorded value stays
readable in ``AuditEvent``, diffs, the admin pages and exports, forwards and backwards.

The steps build on each other, in one project per module (a model cannot be redefined
inside one process, so each step runs in a child process; see ``schema_project``).
"""

import re

import pytest

from tests.schema_project import ADMIN, SchemaProject

V1 = """
from django.db import models

import audit_app


class Customer(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self):
        return self.name


@audit_app.track()
class Account(models.Model):
    name = models.CharField(max_length=50)
    notes = models.CharField("internal notes", max_length=100, blank=True)
    code = models.CharField(max_length=10, default="")
    price = models.DecimalField(max_digits=8, decimal_places=3, default=0)
    owner = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, verbose_name="account owner"
    )
    old_name = models.CharField("nickname", max_length=20, default="")
    api_token = models.CharField(max_length=40, default="")

    def __str__(self):
        return self.name
"""

# notes, owner and api_token removed; old_name renamed; code and price retyped; status added.
V2 = """
from django.db import models

import audit_app


class Customer(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self):
        return self.name


@audit_app.track()
class Account(models.Model):
    name = models.CharField(max_length=50)
    code = models.IntegerField(default=0)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    nickname = models.CharField("nickname", max_length=20, default="")
    status = models.CharField(max_length=10, default="new")

    def __str__(self):
        return self.name
"""

# notes is back, as a text field.
V3 = V2.replace(
    '    status = models.CharField(max_length=10, default="new")\n',
    '    status = models.CharField(max_length=10, default="new")\n'
    '    notes = models.TextField(blank=True, default="")\n',
)

READ = """
events = list(AuditEvent.objects.tracks(Account.objects.get()).order_by("event_id"))
print(json.dumps([{"data": e.data, "diff": e.diff} for e in events]))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, django_db_blocker):
    with django_db_blocker.unblock():
        project = SchemaProject(tmp_path_factory.mktemp("schema"))
    project.models(V1)
    project.makemigrations()
    project.migrate()
    project.run(
        """
        ann = Customer.objects.create(name="Ann")
        account = Account.objects.create(
            name="A", notes="VIP", code="12", price="1.234", owner=ann, old_name="Bob",
            api_token="s3cret",
        )
        account.notes = "VIP2"
        account.save()
        print(json.dumps(ann.pk))
        """
    )
    project.manage("audit", "seal")
    project.models(V2)
    # makemigrations asks whether old_name was renamed to nickname: yes.
    project.makemigrations(stdin="y\n")
    project.migrate()
    project.run(
        """
        account = Account.objects.get()
        account.nickname, account.code, account.price, account.status = "Bobby", 13, "1.23", "on"
        account.save()
        print(json.dumps(account.pk))
        """
    )
    yield project
    with django_db_blocker.unblock():
        project.drop()


def _verified_clean(project):
    """``audit verify`` recomputes every sealed event and finds nothing."""
    out = project.manage("audit", "verify")
    assert re.search(r"verified \d+ seal records?, [1-9]\d* events?: no findings", out), out


def _ops(migration: str) -> str:
    return "".join(migration.split()).replace('"', "'")


def test_the_generated_migration_keeps_history(project):
    ops = _ops(project.migration("0002"))
    event = "model_name='accountevent'"
    # Removed, and retyped (the old column retires, a new one takes the name): retired.
    for name in ("notes", "owner", "api_token", "code", "price"):
        assert f"audit_app.operations.RetireField({event},name='{name}'" in ops
    assert f"migrations.RemoveField({event}" not in ops
    assert f"audit_app.operations.RenameTrackedField({event},old_name='old_name'," in ops
    for name in ("code", "price", "status"):
        assert f"audit_app.operations.AddTrackedField({event},name='{name}'" in ops
    assert f"migrations.AddField({event}" not in ops
    assert "('audit_app','0006_column_history')" in ops
    assert "No changes detected" in project.makemigrations("--check", "--dry-run")


def test_sealed_events_still_verify_after_the_schema_changes(project):
    # Retired and renamed columns keep the key they were sealed under.
    project.manage("audit", "seal")
    _verified_clean(project)


def test_removed_renamed_retyped_and_added_fields_read_as_recorded(project):
    first, second, third = project.run(READ)
    ann = first["data"]["owner"]
    assert first["data"] == {
        "id": first["data"]["id"],
        "name": "A",
        "notes": "VIP",  # removed: still there
        "owner": ann,  # a removed foreign key
        "api_token": "••••••",  # removed, and still masked
        "nickname": "Bob",  # renamed: under the new name
        "code": "12",  # retyped: as recorded, a string
        "price": "1.234",  # retyped: all three places
    }  # and no "status": added later, not recorded
    assert second["data"]["notes"] == "VIP2"
    assert third["data"] == {
        "id": first["data"]["id"],
        "name": "A",
        "nickname": "Bobby",
        "code": 13,
        "price": "1.23",
        "status": "on",
    }
    assert third["diff"] == {
        "nickname": ["Bob", "Bobby"],
        "code": ["12", 13],
        "price": ["1.234", "1.23"],
        "notes": ["VIP2", None],
        "owner": [ann, None],
        "api_token": ["••••••", "••••••"],
    }


def test_diffs_say_field_removed_and_compare_displays(project):
    changes = project.run(
        """
        from audit_app.diff import event_changes
        event = list(AuditEvent.objects.tracks(Account.objects.get()).order_by("event_id"))[-1]
        print(json.dumps({c.name: [c.kind, c.verbose_name, c.old_display, c.new_display]
                          for c in event_changes(event)}))
        """
    )
    assert changes["notes"] == ["removed", "internal notes", "VIP2", "field removed"]
    assert changes["owner"][:2] == ["removed", "account owner"]
    assert changes["owner"][3] == "field removed"
    assert changes["api_token"][0] == "masked"
    # "12" was recorded by a text column: compared as the number it shows.
    assert changes["code"] == ["value", "code", "12", "13"]
    assert changes["nickname"][2:] == ["Bob", "Bobby"]
    assert "status" not in changes


def test_timeline_and_version_page_show_old_values(project):
    pages = project.run(
        """
        from bs4 import BeautifulSoup
        from django.contrib.auth.models import User
        from django.test import Client
        from django.urls import reverse
        account = Account.objects.get()
        client = Client()
        client.force_login(User.objects.create_superuser("root", "r@example.com", "pw"))
        timeline = client.get(reverse("admin:histapp_account_history", args=[account.pk]))
        rows = [
            [" ".join(c.get_text(" ", strip=True).split()) for c in row.find_all(["th", "td"])]
            for row in BeautifulSoup(timeline.content, "html.parser").select("tr.audit-field")
        ]
        first = AuditEvent.objects.tracks(account).order_by("event_id").first()
        version = client.get(
            reverse("admin:histapp_account_audit_version", args=[account.pk, first.id])
        )
        sections = {
            fs.h2.get_text(strip=True) if fs.h2 else "": [
                " ".join(row.get_text(" ", strip=True).split()).replace(" :", ":")
                for row in fs.select(".form-row")
            ]
            for fs in BeautifulSoup(version.content, "html.parser").select("fieldset")
        }
        filtered = client.get(
            reverse("admin:histapp_account_history", args=[account.pk]), {"field": "notes"}
        )
        choices = [
            o.get_text(strip=True)
            for o in BeautifulSoup(filtered.content, "html.parser").select("select[name=field] option")
        ]
        shown = len(
            BeautifulSoup(filtered.content, "html.parser").select("table.audit-timeline > tbody > tr")
        )
        print(json.dumps({"status": [timeline.status_code, version.status_code],
                          "rows": rows, "sections": sections, "choices": choices,
                          "filtered": shown}))
        """
    )
    assert pages["status"] == [200, 200]
    assert ["Internal notes (no longer a field)", "VIP2", "field removed"] in pages["rows"]
    assert ["Internal notes (no longer a field)", "VIP", "VIP2"] in pages["rows"]
    assert ["Account owner (no longer a field)", "Ann", "field removed"] in pages["rows"]
    assert ["Code", "12", "13"] in pages["rows"]
    removed = pages["sections"]["Fields the model no longer has"]
    assert removed == ["Internal notes: VIP", "Account owner: Ann", "Api token: hidden"]
    assert "Status: not recorded" in [r for rows in pages["sections"].values() for r in rows]
    # The "field changed" filter offers removed fields too, and finds their changes.
    assert "Internal notes (no longer a field)" in pages["choices"]
    assert pages["filtered"] == 2  # the update VIP -> VIP2, and the removal


def test_exports_carry_old_values(project):
    exported = project.run(
        """
        from audit_app.export import stream_csv, stream_jsonl
        events = AuditEvent.objects.tracks(Account.objects.get()).order_by("event_id")
        print(json.dumps({"csv": b"".join(stream_csv(events)).decode(),
                          "jsonl": b"".join(stream_jsonl(events)).decode()}))
        """
    )
    import csv
    import io
    import json

    lines = [json.loads(line) for line in exported["jsonl"].splitlines()]
    assert lines[0]["data"]["notes"] == "VIP"
    assert lines[0]["data"]["code"] == "12"
    assert "status" not in lines[0]["data"]
    assert lines[2]["diff"]["notes"] == ["VIP2", None]
    assert lines[2]["diff"]["code"] == ["12", 13]
    rows = list(csv.DictReader(io.StringIO(exported["csv"])))
    assert json.loads(rows[1]["diff"])["notes"] == ["VIP", "VIP2"]
    assert "notes" in rows[2]["changed_fields"].split()


def test_revert_skips_removed_fields_and_names_a_retyped_misfit(project):
    outcome = project.run(
        """
        import audit_app
        from audit_app.reverting import preview
        account = Account.objects.get()
        first = AuditEvent.objects.tracks(account).order_by("event_id").first()
        plan = preview(first)
        problems = [[type(p).__name__, str(p)] for p in plan.problems]
        partial = first.revert(fields=["nickname", "code"], reason="undo")
        print(json.dumps({"removed": plan.removed, "not_recorded": plan.not_recorded,
                          "fields": plan.fields, "problems": problems,
                          "after": [partial.nickname, partial.code, str(partial.price)]}))
        """
    )
    assert outcome["removed"] == ["Internal notes", "Account owner", "Api token"]
    assert outcome["not_recorded"] == ["Status"]
    assert "notes" not in outcome["fields"] and "status" not in outcome["fields"]
    [(kind, message)] = outcome["problems"]
    assert kind == "RevertSchemaError"
    assert message.startswith("Price (histapp.Account.price) changed type since this version")
    assert outcome["after"] == ["Bob", 12, "1.23"]


def test_a_field_removed_and_added_again_keeps_both_histories(project):
    project.models(V3)
    project.makemigrations()
    assert "audit_app.operations.AddTrackedField(" in project.migration("0003")
    project.migrate()
    project.run(
        """
        account = Account.objects.get()
        account.notes = "again"
        account.save()
        print(json.dumps(account.pk))
        """
    )
    # A field added under a retired field's name gets a sealing key of its own.
    project.manage("audit", "seal")
    _verified_clean(project)
    events = project.run(READ)
    notes = [e["data"].get("notes", "not recorded") for e in events]
    # insert, update (v1); update (v2); the partial revert; update (v3)
    assert notes == ["VIP", "VIP2", "not recorded", "not recorded", "again"]


def test_migrating_backwards_brings_the_columns_back(project):
    project.migrate("histapp", "0001")
    project.models(V1)
    columns = project.run(
        """
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT notes, old_name, code, owner_id IS NOT NULL FROM histapp_accountevent "
                "ORDER BY audit_id"
            )
            rows = cursor.fetchall()
            cursor.execute(
                "SELECT field_name, retired_by FROM audit_app_columnhistory ORDER BY field_name"
            )
            facts = cursor.fetchall()
        events = list(AuditEvent.objects.tracks(Account.objects.get()).order_by("event_id"))
        print(json.dumps({"rows": rows, "facts": facts, "data": [e.data for e in events]}))
        """
    )
    rows = columns["rows"]
    assert [r[0] for r in rows] == ["VIP", "VIP2", None, None, None]
    assert [r[1] for r in rows] == ["Bob", "Bob", "Bobby", "Bob", "Bob"]
    assert [r[2] for r in rows][:2] == ["12", "12"]
    assert [r[3] for r in rows] == [True, True, False, False, False]
    # What events recorded under the later schema stays, in retired columns.
    assert columns["facts"] == [
        ["code", "unapplied"],
        ["notes", "unapplied"],
        ["price", "unapplied"],
        ["status", "unapplied"],
    ]
    data = columns["data"]
    assert [d["notes"] for d in data] == ["VIP", "VIP2", None, None, "again"]
    assert [d["code"] for d in data] == ["12", "12", 13, 12, 12]
    assert [d.get("status") for d in data] == [None, None, "on", "on", "on"]
    _verified_clean(project)
    # And forwards again: every value recorded is still read.
    project.models(V3)
    project.migrate()
    _verified_clean(project)
    data = [e["data"] for e in project.run(READ)]
    assert [d.get("notes") for d in data] == ["VIP", "VIP2", None, None, "again"]
    assert [d["code"] for d in data] == ["12", "12", 13, 12, 12]


def test_erasing_a_removed_field_drops_its_values_on_the_record(project):
    errors = [
        project.manage_fails("audit", "erase", "histapp.Account", "name", "--reason", "x"),
        project.manage_fails("audit", "erase", "histapp.Account", "nope", "--reason", "x"),
        project.manage_fails("audit", "erase", "histapp.Account", "owner"),
        project.manage_fails("audit", "erase", "histapp.Account", "owner", "--reason", " "),
    ]
    assert "histapp.Account.name is still a tracked field" in errors[0]
    assert "no removed field 'nope'" in errors[1] and "api_token" in errors[1]
    assert "--reason" in errors[2]
    assert "Say why" in errors[3]
    dry = project.manage("audit", "erase", "histapp.Account", "owner", "--reason", "x", "--dry-run")
    assert "2 events hold a value of histapp.Account.owner; nothing was erased" in dry
    assert [e["data"].get("owner") is not None for e in project.run(READ)][:2] == [True, True]

    out = project.manage("audit", "erase", "histapp.Account", "owner", "--reason", "request 42")
    assert "2 events' values of histapp.Account.owner erased" in out
    after = project.run(
        """
        from audit_app.models import Bypass
        events = list(AuditEvent.objects.tracks(Account.objects.get()).order_by("event_id"))
        record = Bypass.objects.get(operation="ERASE")
        print(json.dumps({"owners": [e.data.get("owner") for e in events],
                          "record": [record.table_name, record.row_count, record.reason,
                                     record.context.metadata.get("command")]}))
        """
    )
    assert after["owners"] == [None] * 5
    # Sealed events that held a value no longer match their digests: verify says so.
    findings = project.manage_fails("audit", "verify")
    assert "owner" in findings and "changed" in findings, findings
    assert after["record"] == [
        "histapp_accountevent",
        2,
        "erase retired field owner: request 42",
        "audit",
    ]


HAND_RENAME = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("histapp", "0001_initial")]
    operations = [migrations.RenameField("account", "old_name", "nickname")]
"""


@pytest.fixture
def fresh_project(tmp_path, django_db_blocker):
    with django_db_blocker.unblock():
        project = SchemaProject(tmp_path)
    yield project
    with django_db_blocker.unblock():
        project.drop()


def test_a_rename_written_by_hand_is_followed_by_the_event_table(fresh_project):
    project = fresh_project
    project.models(V1)
    project.makemigrations()
    project.migrate()
    project.run(
        """
        Account.objects.create(name="A", old_name="Bob")
        print(json.dumps(1))
        """
    )
    project.app.joinpath("migrations", "0002_rename_by_hand.py").write_text(HAND_RENAME)
    project.models(V1.replace("    old_name = ", "    nickname = "))
    project.makemigrations("--name", "follow")
    ops = _ops(project.migration("0003"))
    assert "audit_app.operations.RenameTrackedField(model_name='accountevent'," in ops
    assert "RetireField" not in ops
    project.migrate()
    [event] = project.run(READ)
    assert event["data"]["nickname"] == "Bob"
    assert "old_name" not in event["data"]


def test_untracking_a_model_keeps_its_history_in_a_retired_table(fresh_project):
    project = fresh_project
    project.models(V1)
    project.makemigrations()
    project.migrate()
    project.run(
        """
        Account.objects.create(name="A", notes="VIP")
        Account.objects.update(notes="VIP2")
        print(json.dumps(1))
        """
    )
    project.models(V1.replace("@audit_app.track()\n", ""))
    project.admin(
        "from django.contrib import admin\nfrom histapp.models import Account\n\n"
        "admin.site.register(Account)\n"
    )
    project.makemigrations("--name", "untrack")
    ops = _ops(project.migration("0002"))
    assert "audit_app.operations.RetireEventModel(name='AccountEvent'" in ops
    assert "migrations.DeleteModel(name='AccountEvent'" not in ops
    project.migrate()
    kept = project.run(
        """
        from django.db import connection
        from audit_app.models import Bypass
        with connection.cursor() as cursor:
            cursor.execute("SELECT notes FROM audit_retired_histapp_accountevent ORDER BY audit_id")
            notes = [row[0] for row in cursor.fetchall()]
        record = Bypass.objects.get(operation="RETIRE")
        print(json.dumps({"notes": notes, "record": [record.table_name, record.row_count]}))
        """
    )
    assert kept == {"notes": ["VIP", "VIP2"], "record": ["histapp_accountevent", 2]}
    # Tracked again: a new event table beside the retired one.
    project.models(V1)
    project.admin(ADMIN)
    project.makemigrations("--name", "track_again")
    project.migrate()
    project.run(
        """
        Account.objects.update(notes="back")
        print(json.dumps(1))
        """
    )
    assert [e["data"]["notes"] for e in project.run(READ)] == ["back"]
    # Unapplied, the retirement gives the table its name and its history back.
    project.migrate("histapp", "0001")
    project.models(V1)
    assert [e["data"]["notes"] for e in project.run(READ)] == ["VIP", "VIP2"]


def test_a_field_moved_to_another_column_keeps_its_sealed_history(fresh_project):
    project = fresh_project
    project.models(V1)
    project.makemigrations()
    project.migrate()
    project.run(
        """
        Account.objects.create(name="A")
        print(json.dumps(1))
        """
    )
    project.manage("audit", "seal")
    project.models(
        V1.replace(
            "name = models.CharField(max_length=50)",
            'name = models.CharField(max_length=50, db_column="title")',
        )
    )
    project.makemigrations("--name", "move")
    ops = _ops(project.migration("0002"))
    assert "audit_app.operations.AlterTrackedField(model_name='accountevent',name='name'" in ops
    project.migrate()
    assert [e["data"]["name"] for e in project.run(READ)] == ["A"]
    _verified_clean(project)
