"""Event order: write order per object, but not commit order across transactions (B1, B3).

The first test is the guarantee the history pages rely on; the second documents the
known limit of docs/reliability.md: an exporter must not page live data by "created_at
(or id) greater than the last one seen".
"""

import threading

import pytest
from django.db import connection, connections, transaction
from django.db.models import F

import audit_app
from audit_app import sql
from tests.reliability.conftest import wait_until
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_objects_events_follow_its_row_lock_order(fresh):
    """A waits for B's row lock: A's event comes after B's, in id and in time, and its
    snapshot builds on B's committed value."""
    obj = Widget.objects.create(name="v0", size=0)
    holder = fresh()
    holder.execute("BEGIN")
    holder.execute("SELECT set_config(%s, %s, true)", [sql.CONTEXT_GUC, '{"who": "B"}'])
    holder.execute("UPDATE trackapp_widget SET size = size + 1, name = 'B' WHERE id = %s", [obj.pk])
    pids = []

    def waiter():
        try:
            with audit_app.context(who="A"), transaction.atomic():
                pids.append(connection.connection.info.backend_pid)
                Widget.objects.filter(pk=obj.pk).update(size=F("size") + 1, name="A")
        finally:
            connections.close_all()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: pids, "the waiter to start")
    wait_until(
        lambda: holder.execute(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", pids
        ).fetchone()[0],
        "A to wait for B's row lock",
    )
    holder.execute("COMMIT")
    thread.join(10)
    events = list(
        Widget.audit_event_model.objects.filter(audit_obj=obj)
        .select_related("audit_context")
        .order_by("audit_id")
    )
    assert [(e.name, e.size, e.audit_context and e.audit_context.metadata) for e in events] == [
        ("v0", 0, None),
        ("B", 1, {"who": "B"}),
        ("A", 2, {"who": "A"}),
    ]
    times = [e.audit_created_at for e in events]
    assert times == sorted(times)


def test_event_time_and_id_are_write_order_not_commit_order(fresh):
    """T1 writes first and commits last. A reader that ran between the two commits and
    resumes after the newest event it saw never sees T1's event."""
    a = Widget.objects.create(name="a")
    b = Widget.objects.create(name="b")
    slow = fresh()
    slow.execute("BEGIN")
    slow.execute("UPDATE trackapp_widget SET name = 'slow' WHERE id = %s", [a.pk])
    Widget.objects.filter(pk=b.pk).update(name="fast")  # autocommit: committed now

    events = Widget.audit_event_model.objects
    seen = list(events.order_by("audit_created_at", "audit_id"))
    last = seen[-1]
    assert last.name == "fast"
    slow.execute("COMMIT")

    slow_event = events.get(name="slow")
    assert slow_event.audit_created_at < last.audit_created_at
    assert slow_event.audit_id < last.audit_id
    # Resuming by time or by id skips the late-committed event for good.
    assert not events.filter(audit_created_at__gt=last.audit_created_at, name="slow").exists()
    assert not events.filter(audit_id__gt=last.audit_id, name="slow").exists()
