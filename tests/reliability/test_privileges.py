"""Tamper resistance with database privileges (research H1, H2; docs/security.md).

The test creates an application role, runs the grant script of docs/security.md
verbatim (only the role name changed), then connects as that role: capture works, and
nothing the role can do alters or removes history or switches capture off unrecorded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pgtrigger
import psycopg
import pytest
from django.db import connection, connections

import audit_app
from audit_app import partitioning, sql
from audit_app.registry import event_models
from shop.models import Order
from tests.reliability.conftest import database_alias
from tests.trackapp.models import Invoice, RowWidget, Widget

pytestmark = pytest.mark.django_db(transaction=True)

ROLE = "audit_reliability_app"
SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
HISTORY_TABLES = {sql.CONTEXT_TABLE, sql.BYPASS_TABLE}
TABLE_PRIVILEGES = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]


def documented_sql(name: str) -> str:
    """The SQL block that follows ``<!-- name: ... -->`` in docs/security.md."""
    text = SECURITY_DOC.read_text()
    match = re.search(rf"<!-- {re.escape(name)}:[^>]*-->\s*```sql\n(.*?)```", text, re.S)
    assert match, f"docs/security.md has no ```sql block marked <!-- {name}: ... -->"
    return match.group(1)


def drop_role(admin):
    if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [ROLE]).fetchone():
        admin.execute(f"DROP OWNED BY {ROLE}")
        admin.execute(f"DROP ROLE {ROLE}")


@pytest.fixture
def app_role(fresh):
    admin = fresh()
    drop_role(admin)
    admin.execute(f"CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
    grants = documented_sql("grants.sql")
    assert "'shop_app'" in grants
    admin.execute(grants.replace("'shop_app'", f"'{ROLE}'"))
    try:
        yield ROLE
    finally:
        connections.close_all()
        drop_role(admin)


@pytest.fixture
def as_app(app_role):
    """A Django connection (alias ``app``) that logs in as the application role."""
    with database_alias("app", USER=app_role, PASSWORD="") as wrapper:
        yield wrapper


def privileges(admin, table):
    return {
        p
        for p in TABLE_PRIVILEGES
        if admin.execute(
            "SELECT has_table_privilege(%s, %s, %s)", [ROLE, sql.quote(table), p]
        ).fetchone()[0]
    }


def test_the_grant_script_makes_history_append_only_for_the_app_role(app_role, fresh):
    admin = fresh()
    event_tables = {m._meta.db_table for m in event_models()}
    insert_only = {
        table
        for (table,) in admin.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind IN ('r', 'p') AND NOT relispartition"
        ).fetchall()
        if privileges(admin, table) == {"SELECT", "INSERT"}
    }
    # The script's rule finds exactly the product's history tables.
    assert insert_only == event_tables | HISTORY_TABLES
    for model in (Widget, RowWidget, Invoice):
        assert privileges(admin, model._meta.db_table) == {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert privileges(admin, "django_migrations") == {"SELECT"}
    role = admin.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
        "FROM pg_roles WHERE rolname = %s",
        [ROLE],
    ).fetchone()
    assert role == (False, False, False, False, False)
    owned = admin.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", [ROLE]
    ).fetchone()[0]
    assert owned == 0


def test_capture_works_as_the_app_role(as_app):
    with as_app.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == ROLE
    with audit_app.context(user=None, via="app role"):
        for model in (Widget, RowWidget):
            obj = model.objects.using("app").create(name="a")
            model.objects.using("app").filter(pk=obj.pk).update(name="b")
            model.objects.using("app").filter(pk=obj.pk).delete()
        invoice = Invoice.objects.using("app").create(status="draft")
        Invoice.objects.using("app").filter(pk=invoice.pk).update(status="sent")
        with audit_app.disable_tracking("bulk fix by the app"):
            Widget.objects.using("app").create(name="untracked")
    expected = {"user": None, "via": "app role"}
    for model in (Widget, RowWidget):
        events = model.audit_event_model.objects.order_by("audit_id").select_related(
            "audit_context"
        )
        assert [(e.audit_label, e.name, e.audit_context.metadata) for e in events] == [
            ("insert", "a", expected),
            ("update", "b", expected),
            ("delete", "b", expected),
        ]
    events = Invoice.audit_event_model.objects.order_by("audit_id")
    assert [(e.audit_label, e.status) for e in events] == [("insert", "draft"), ("update", "sent")]
    # The sanctioned bypass is on record, with its reason and context.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT b.table_name, b.operation, b.row_count, b.reason, c.metadata "
            f"FROM {sql.BYPASS_TABLE} AS b JOIN {sql.CONTEXT_TABLE} AS c ON c.id = b.context_id"
        )
        rows = cursor.fetchall()
    assert len(rows) == 1
    assert rows[0][:4] == ("trackapp_widget", "INSERT", 1, "bulk fix by the app")


def _snapshot(admin):
    """Everything the attempts below must leave untouched."""
    tables = [m._meta.db_table for m in event_models()] + sorted(HISTORY_TABLES)
    rows = {
        table: admin.execute(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
            f"FROM {sql.quote(table)} AS t"
        ).fetchone()[0]
        for table in tables
    }
    triggers = admin.execute(
        "SELECT tgrelid::regclass::text, tgname, tgenabled, md5(pg_get_triggerdef(oid)), "
        "md5(pg_get_functiondef(tgfoid)) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2"
    ).fetchall()
    function = admin.execute(
        f"SELECT md5(pg_get_functiondef('{sql.CONTEXT_FUNCTION}()'::regprocedure))"
    ).fetchone()
    return rows, triggers, function


def test_the_app_role_cannot_change_remove_or_switch_off_history(app_role, fresh):
    with audit_app.context(user=None, who="owner"):
        widget = Widget.objects.create(name="kept")
        Invoice.objects.create(status="draft")
        with audit_app.disable_tracking("setup"):
            RowWidget.objects.create(name="untracked")
    admin = fresh()
    triggers = dict(
        admin.execute(
            "SELECT tgrelid::regclass::text || '.' || tgname, tgfoid::regproc::text "
            "FROM pg_trigger WHERE NOT tgisinternal"
        ).fetchall()
    )
    widget_trigger = next(t for t in triggers if t.startswith("trackapp_widget.pgtrigger_audit_u"))
    append_only = next(t for t in triggers if t.startswith("trackapp_invoiceevent."))
    before = _snapshot(admin)
    events = sql.quote(Widget.audit_event_model._meta.db_table)
    invoice_events = sql.quote(Invoice.audit_event_model._meta.db_table)
    order_events = Order.audit_event_model._meta.db_table
    partition = sql.quote(partitioning.partitions(order_events)[0].name)
    order_events = sql.quote(order_events)
    attempts = [
        f"UPDATE {events} SET name = 'forged'",
        f"DELETE FROM {events}",
        f"TRUNCATE {events}",
        f"UPDATE {invoice_events} SET status = 'forged'",
        f"DELETE FROM {invoice_events}",
        f"TRUNCATE {invoice_events}",
        f"UPDATE {sql.CONTEXT_TABLE} SET metadata = '{{}}'",
        f"DELETE FROM {sql.CONTEXT_TABLE}",
        f"TRUNCATE {sql.CONTEXT_TABLE}",
        f"UPDATE {sql.BYPASS_TABLE} SET reason = 'forged'",
        f"DELETE FROM {sql.BYPASS_TABLE}",
        f"TRUNCATE {sql.BYPASS_TABLE}",
        "ALTER TABLE trackapp_widget DISABLE TRIGGER ALL",
        "ALTER TABLE trackapp_widget DISABLE TRIGGER USER",
        f"ALTER TABLE trackapp_widget DISABLE TRIGGER {widget_trigger.split('.')[1]}",
        f"ALTER TABLE {invoice_events} DISABLE TRIGGER {append_only.split('.')[1]}",
        f"DROP TRIGGER {widget_trigger.split('.')[1]} ON trackapp_widget",
        f"DROP TABLE {events}",
        f"ALTER TABLE {events} RENAME TO forged",
        f"ALTER TABLE {events} OWNER TO {ROLE}",
        "SET session_replication_role = replica",
        "SELECT set_config('session_replication_role', 'replica', true)",
        f"CREATE OR REPLACE FUNCTION {sql.CONTEXT_FUNCTION}() RETURNS bigint "
        "LANGUAGE sql AS 'SELECT NULL::bigint'",
        f"CREATE OR REPLACE FUNCTION {triggers[widget_trigger]}() RETURNS trigger "
        "LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'",
        f"CREATE TRIGGER forged BEFORE INSERT ON {events} FOR EACH ROW "
        "EXECUTE FUNCTION suppress_redundant_updates_trigger()",
        # A partitioned event table: its partitions cannot be emptied, changed or cut off.
        f"TRUNCATE {partition}",
        f"DELETE FROM {partition}",
        f"UPDATE {partition} SET status = 'forged'",
        f"ALTER TABLE {order_events} DETACH PARTITION {partition}",
        f"DROP TABLE {partition}",
    ]
    app = fresh(user=ROLE)
    allowed = []
    for statement in attempts:
        try:
            app.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            continue
        allowed.append(statement)
    assert allowed == []
    # A grant of what the role lacks only warns, and changes nothing.
    app.execute(f"GRANT UPDATE, DELETE, TRUNCATE ON {events} TO {ROLE}")
    assert privileges(admin, Widget.audit_event_model._meta.db_table) == {"SELECT", "INSERT"}
    assert _snapshot(admin) == before
    assert Widget.audit_event_model.objects.get().audit_obj_id == widget.pk


def test_session_settings_do_not_switch_capture_off_for_the_app_role(as_app):
    uris = [f"trackapp.Widget:{t.name}" for m, t in pgtrigger.registered() if m is Widget]
    assert len(uris) == 3
    with audit_app.context(user=None, via="ignore"):
        with pgtrigger.ignore(*uris, databases=["app"]):
            obj = Widget.objects.using("app").create(name="a")
        with as_app.cursor() as cursor:
            # Session level, as stock pgtrigger's switch would be set by hand.
            pgids = [t.get_pgid(m) for m, t in pgtrigger.registered() if m is Widget]
            cursor.execute(f"SET pgtrigger.ignore = '{{{','.join(pgids)}}}'")
            Widget.objects.using("app").filter(pk=obj.pk).update(name="b")
            Widget.objects.using("app").filter(pk=obj.pk).delete()
            cursor.execute("RESET ALL")
    events = Widget.audit_event_model.objects.order_by("audit_id").select_related("audit_context")
    assert [(e.audit_label, e.name, e.audit_context.metadata["via"]) for e in events] == [
        ("insert", "a", "ignore"),
        ("update", "b", "ignore"),
        ("delete", "b", "ignore"),
    ]
