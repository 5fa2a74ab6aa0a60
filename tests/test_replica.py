"""Reading history from a replica (``AUDIT_READ_DATABASE``), against a real standby.

The ``replica`` fixture streams the test database to a hot standby (``tests/standby.py``).
The oracle: pause the standby's replay, change an object, and see which pages show the
change. The event browser and exports read the replica and do not show it yet; the
object's timeline, revert and restore confirmations read the primary and do.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connections
from django.template.loader import render_to_string
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import audit_app
import audit_app.checks as audit_checks
from audit_admin.replica_notice import describe
from audit_app import conf
from audit_app.cascade import plan_restore
from audit_app.models import AuditEvent
from audit_app.replicas import ReplicaLag, primary_reads, replica_lag
from shop.models import Customer, Product, ProductTag, Tag

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "audit_admin"
REPLICA = override_settings(AUDIT_READ_DATABASE="replica")
on_standby = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def event_keys(queryset) -> set[str]:
    return set(queryset.without_diffs().values_list("id", flat=True))


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root")


@pytest.fixture
def ada(replica, root):
    """A customer changed once, replayed on the standby; then replay is paused and she is
    renamed: the rename is on the primary only."""
    with audit_app.context(user=root.pk, username="root"):
        customer = Customer.objects.create(name="Ada", email="ada@example.com")
        customer.phone = "123"
        customer.save()
    replica.wait_for_replay()
    replica.pause_replay()
    with audit_app.context(user=root.pk, username="root"):
        customer.name = "Ada Lovelace"
        customer.save()
    return customer


def newest_on_primary(obj) -> AuditEvent:
    return AuditEvent.objects.using("default").tracks(obj).first()


# -- routing and the check (no standby needed) ---------------------------------------------------


def test_the_read_database_is_the_default_one_unless_set():
    assert conf.read_database() == "default"
    assert AuditEvent.objects.all().db == AuditEvent.objects.db == "default"
    assert audit_checks.check_read_database() == []


@override_settings(AUDIT_READ_DATABASE="elsewhere")
def test_reads_follow_the_setting_using_and_the_primary_pin_win():
    assert AuditEvent.objects.db == "elsewhere"
    assert AuditEvent.objects.tracks(Customer(pk=1)).without_diffs().db == "elsewhere"
    assert AuditEvent.objects.using("default").db == "default"
    assert AuditEvent.objects.from_primary().db == "default"
    queryset = AuditEvent.objects.all()
    with primary_reads():
        assert queryset.db == AuditEvent.objects.db == "default"
        assert AuditEvent.objects.using("elsewhere").db == "elsewhere"
    assert queryset.db == "elsewhere"


@override_settings(AUDIT_READ_DATABASE="replcia")
def test_e020_read_database_not_in_databases():
    (error,) = audit_checks.check_read_database()
    assert error.id == "audit_app.E020"
    assert "'replcia'" in error.msg and "'default'" in error.msg
    assert "DATABASES" in error.hint


def test_e021_read_database_not_postgresql(monkeypatch, settings):
    fake = {
        "default": SimpleNamespace(vendor="postgresql"),
        "lite": SimpleNamespace(vendor="sqlite"),
    }
    monkeypatch.setattr(audit_checks, "connections", fake)
    monkeypatch.setattr(audit_checks.settings, "DATABASES", {"default": {}, "lite": {}})
    settings.AUDIT_READ_DATABASE = "lite"
    (error,) = audit_checks.check_read_database()
    assert error.id == "audit_app.E021" and "PostgreSQL" in error.hint


@pytest.mark.parametrize(
    ("lag", "says", "behind"),
    [
        (ReplicaLag("r", True, 0, 0.0), "“r”, which is up to date.", False),
        (ReplicaLag("r", True, 2048, 0.2), "less than a second (2.0 KB of changes)", True),
        (ReplicaLag("r", True, 100, 75.0), "about 75 seconds (100 bytes of changes)", True),
        (ReplicaLag("r", True, 10**6, 600.0), "about 10 minutes", True),
        (ReplicaLag("r", True, 10, None), "10 bytes of changes behind the primary", True),
        (ReplicaLag("r", False, None, None), "could not be measured", True),
    ],
)
def test_the_notice_says_how_far_behind(lag, says, behind):
    notice = describe(lag)
    assert says in notice.text.replace("\xa0", " ")
    assert notice.behind is behind


def test_no_lag_is_measured_for_the_primary():
    assert replica_lag("default") is None


# -- AuditEvent queries -------------------------------------------------------------------------


@on_standby
@REPLICA
def test_default_reads_go_to_the_replica_and_using_wins(ada, replica):
    rename = newest_on_primary(ada)
    assert rename.data["name"] == "Ada Lovelace"
    with CaptureQueriesContext(connections["replica"]) as on_replica:
        seen = event_keys(AuditEvent.objects.tracks(ada))
    assert on_replica.captured_queries, "the default manager did not read the replica"
    assert rename.id not in seen and len(seen) == 2
    assert AuditEvent.objects.across(Customer).count() == 2
    assert rename.id in event_keys(AuditEvent.objects.using("default").tracks(ada))
    assert rename.id in event_keys(AuditEvent.objects.from_primary().tracks(ada))

    replica.resume_replay()
    replica.wait_for_replay()
    assert rename.id in event_keys(AuditEvent.objects.tracks(ada))


@on_standby
@REPLICA
def test_per_model_event_querysets_read_the_primary(ada):
    """``obj.audit_events`` and ``SomeEvent.objects`` follow Django's routers: the primary."""
    assert ada.audit_events.last().name == "Ada Lovelace"
    assert Customer.audit_event_model.objects.count() == 3


@on_standby
@REPLICA
def test_revert_and_restore_in_code_read_the_primary(ada, root):
    """Reverting an event loaded from the replica checks it against the primary's history,
    and a restore with the cascade finds the followed rows removed while replay waits."""
    first = AuditEvent.objects.tracks(ada).last()
    stale = AuditEvent.objects.tracks(ada).first()  # the replica's newest: not the rename
    with pytest.raises(audit_app.RevertError, match="changed since"):
        first.revert(user=root, expected_event_id=stale.event_id)
    first.revert(user=root, expected_event_id=newest_on_primary(ada).event_id)
    ada.refresh_from_db()
    assert (ada.name, ada.phone) == ("Ada", "")

    tag = Tag.objects.create(name="old")
    product = Product.objects.create(sku="p-1", name="Pen", price=2)
    product.tags.add(tag)
    pk = product.pk
    with audit_app.context(reason="drop"):
        product.delete()
    delete = AuditEvent.objects.from_primary().tracks(Product(pk=pk)).first()
    assert delete.label == "delete"
    assert not AuditEvent.objects.across(Product).filter(event_id=delete.event_id).exists()
    assert [row.model for row in plan_restore(delete).rows] == [ProductTag]


# -- admin pages --------------------------------------------------------------------------------


@on_standby
@REPLICA
def test_browser_and_exports_read_the_replica(client, root, ada):
    client.force_login(root)
    rename = newest_on_primary(ada)
    page = soup(client.get(reverse("admin:audit_app_auditevent_changelist")))
    shown = {tr["data-event"] for tr in page.select("#result_list > tbody > tr[data-event]")}
    assert rename.id not in shown
    assert len([key for key in shown if key.startswith("shop.customerevent:")]) == 2

    notice = page.select_one("#audit-replica")
    assert "audit-replica-behind" in notice["class"]
    assert "“replica”" in notice.text and "behind the primary" in notice.text
    # The WAL waiting to be replayed, measured.
    assert re.search(r"\(\d[\d.]*\s(bytes|KB|MB) of changes\)", notice.text), notice.text

    export = client.get(reverse("admin:audit_app_auditevent_export", args=["csv"]))
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [row["action"] for row in rows if row["model"] == "shop.Customer"] == [
        "changed",
        "created",
    ]
    assert "Ada Lovelace" not in str(rows)
    jsonl = client.get(reverse("admin:audit_app_auditevent_export", args=["jsonl"]))
    assert b"Ada Lovelace" not in b"".join(jsonl.streaming_content)

    # A link to an event the replica has not replayed yet still leads to it.
    link = client.get(reverse("admin:audit_app_auditevent_change", args=[rename.id]))
    assert link.status_code == 302


@on_standby
@REPLICA
def test_timeline_and_revert_confirmation_read_the_primary(client, root, ada):
    client.force_login(root)
    rename = newest_on_primary(ada)
    timeline = soup(client.get(reverse("admin:shop_customer_history", args=[ada.pk])))
    assert "Ada Lovelace" in timeline.select_one("table.audit-timeline").text
    assert not timeline.select("#audit-replica")

    first = AuditEvent.objects.tracks(ada).last()
    url = reverse("admin:shop_customer_audit_revert", args=[ada.pk, first.id])
    confirm = soup(client.post(url))
    changed = {r["data-field"] for r in confirm.select("table.audit-revert-diff tbody tr")}
    assert changed == {"name", "phone"}  # from the renamed object, to the first version
    expected = confirm.select_one("input[name=expected_event_id]")["value"]
    assert expected == str(rename.event_id)
    done = client.post(url, {"confirm": "yes", "expected_event_id": expected})
    assert done.status_code == 302
    ada.refresh_from_db()
    assert ada.name == "Ada"


@on_standby
@REPLICA
def test_bulk_revert_confirmation_reads_the_primary(client, root, ada):
    client.force_login(root)
    first = AuditEvent.objects.tracks(ada).last()
    response = client.post(
        reverse("admin:audit_app_auditevent_changelist"),
        {"action": "revert_selected", ACTION_CHECKBOX_NAME: [first.id]},
    )
    page = soup(response)
    expected = page.select_one(f"input[name='expected_{first.id}']")["value"]
    assert expected == str(newest_on_primary(ada).event_id)
    assert "Ada Lovelace" in page.text
    # An event the replica has not replayed yet is found too (a page of the primary's).
    rename = client.post(
        reverse("admin:audit_app_auditevent_changelist"),
        {"action": "revert_selected", ACTION_CHECKBOX_NAME: [newest_on_primary(ada).id]},
    )
    assert rename.status_code == 200
    assert "already matches this version" in soup(rename).text


@on_standby
@REPLICA
def test_deleted_list_and_restore_read_the_primary(client, root, ada):
    client.force_login(root)
    pk = ada.pk
    ada.delete()  # while replay waits: only the primary knows
    deleted = soup(client.get(reverse("admin:shop_customer_audit_deleted")))
    rows = deleted.select("table.audit-deleted tbody tr")
    assert len(rows) == 1 and "Ada Lovelace" in rows[0].text
    restore_url = rows[0].select_one("form")["action"]
    assert client.post(restore_url).status_code == 200
    assert client.post(restore_url, {"confirm": "yes"}).status_code == 302
    assert Customer.objects.get(pk=pk).name == "Ada Lovelace"


@on_standby
def test_no_notice_when_reading_the_primary(client, root, replica):
    client.force_login(root)
    page = soup(client.get(reverse("admin:audit_app_auditevent_changelist")))
    assert page.select_one("#changelist") is not None
    assert not page.select("#audit-replica")


@pytest.mark.parametrize("theme", ["", "themes/unfold/"])
def test_every_browser_template_shows_the_notice(theme):
    source = (TEMPLATES / f"{theme}events/change_list.html").read_text()
    assert '{% include "audit_admin/includes/replica_notice.html" %}' in source


def test_the_notice_is_escaped():
    notice = describe(ReplicaLag("<script>x</script>", True, 0, 0.0))
    html = render_to_string("audit_admin/includes/replica_notice.html", {"replica_notice": notice})
    line = BeautifulSoup(html, "html.parser").select_one("#audit-replica")
    assert "<script>x</script>" in line.text and not line.select("script")
