"""Fault injection: whatever goes wrong, a change and its event are both there or both not.

Every check looks from a fresh connection (a raw psycopg connection outside Django),
after the connection under test has failed.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest
from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models.signals import post_save

import audit_app
from audit_app import sql
from tests.reliability.conftest import wait_until
from tests.trackapp.models import Color, RowWidget, Widget

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = pytest.mark.parametrize("model", [Widget, RowWidget], ids=["statement", "row"])
LOCK_KEY = 7_424_242  # advisory lock that holds a COMMIT in flight


def history(observer, model, pk):
    """(label, name, context metadata) of each event of one object, oldest first."""
    table = sql.quote(model.audit_event_model._meta.db_table)
    return observer.execute(
        f"SELECT e.audit_label, e.name, c.metadata FROM {table} AS e "
        f"LEFT JOIN {sql.quote(sql.CONTEXT_TABLE)} AS c ON c.id = e.audit_context_id "
        "WHERE e.id = %s ORDER BY e.audit_id",
        [pk],
    ).fetchall()


def live_name(observer, model, pk):
    row = observer.execute(
        f"SELECT name FROM {sql.quote(model._meta.db_table)} WHERE id = %s", [pk]
    ).fetchone()
    return row[0] if row else None


def contexts_with(observer, key, value):
    return observer.execute(
        f"SELECT count(*) FROM {sql.quote(sql.CONTEXT_TABLE)} WHERE metadata->>%s = %s",
        [key, value],
    ).fetchone()[0]


def waiting_on_lock(observer, pid, query):
    row = observer.execute(
        "SELECT query, wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
    ).fetchone()
    return row is not None and row[0] == query and row[1] == "Lock"


def gone(observer, pid):
    return not observer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()


def assert_all_or_nothing(observer, model, pk, *, before, after, case):
    """The object is either unchanged with its old history, or changed with one more event
    carrying the context; return which."""
    name = live_name(observer, model, pk)
    events = history(observer, model, pk)
    old = [("insert", before, None)]
    new = [*old, ("update", after, {"case": case})]
    assert (name, events) in [(before, old), (after, new)], (name, events)
    return "present" if name == after else "absent"


# -- (a) the backend dies after the tracked UPDATE, before COMMIT --------------------------


@MODELS
def test_backend_terminated_before_commit_leaves_neither_change_nor_event(model, fresh):
    obj = model.objects.create(name="before")
    observer = fresh()
    with pytest.raises(DatabaseError):
        with audit_app.context(case="a"), transaction.atomic():
            model.objects.filter(pk=obj.pk).update(name="after")
            pid = connection.connection.info.backend_pid
            # The UPDATE ran and wrote its event inside the open transaction.
            assert observer.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]
    connection.close()
    assert not connection.in_atomic_block
    assert assert_all_or_nothing(observer, model, obj.pk, before="before", after="after", case="a")
    assert live_name(observer, model, obj.pk) == "before"
    assert contexts_with(observer, "case", "a") == 0


@MODELS
def test_statement_cancelled_mid_flight_in_a_savepoint_leaves_none_of_its_rows(model, fresh):
    """A multi-row UPDATE cancelled while it waits on a row lock: the rows it already
    changed and their (not yet written) events vanish; the rest of the transaction
    commits with its own events."""
    rows = model.objects.bulk_create([model(name=f"r{i}") for i in range(3)])
    pks = [r.pk for r in rows]
    locker = fresh()
    observer = fresh()
    locker.execute("BEGIN")
    locker.execute(
        f"SELECT FROM {sql.quote(model._meta.db_table)} WHERE id = %s FOR UPDATE", [pks[-1]]
    )
    outcome = {}

    def writer():
        try:
            with audit_app.context(case="e"), transaction.atomic():
                outcome["pid"] = connection.connection.info.backend_pid
                try:
                    with transaction.atomic():
                        model.objects.filter(pk__in=pks).update(name="cancelled")
                except OperationalError as exc:
                    outcome["cancelled"] = exc
                model.objects.filter(pk=pks[0]).update(name="kept")
        except Exception as exc:  # pragma: no cover - reported below
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until(lambda: "pid" in outcome, "the writer to start")
        pid = outcome["pid"]
        wait_until(
            lambda: observer.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid]
            ).fetchone()[0],
            "the UPDATE to wait on the row lock",
        )
        assert observer.execute("SELECT pg_cancel_backend(%s)", [pid]).fetchone()[0]
        thread.join(10)
    finally:
        locker.execute("ROLLBACK")
        thread.join(10)
    assert "error" not in outcome, outcome
    assert "canceling statement" in str(outcome["cancelled"])
    assert [live_name(observer, model, pk) for pk in pks] == ["kept", "r1", "r2"]
    assert history(observer, model, pks[0]) == [
        ("insert", "r0", None),
        ("update", "kept", {"case": "e"}),
    ]
    for i, pk in enumerate(pks[1:], start=1):
        assert history(observer, model, pk) == [("insert", f"r{i}", None)]


# -- (b) the connection is lost while COMMIT is in flight ----------------------------------


@pytest.fixture
def held_commit(fresh):
    """A deferred constraint trigger on the tracked tables that makes COMMIT wait for an
    advisory lock: the test decides when a COMMIT already sent may complete."""
    ddl = fresh()
    tables = [sql.quote(m._meta.db_table) for m in (Widget, RowWidget)]
    ddl.execute(
        "CREATE FUNCTION reliability_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_advisory_xact_lock({LOCK_KEY}); RETURN NULL; END $$"
    )
    for table in tables:
        ddl.execute(
            f"CREATE CONSTRAINT TRIGGER reliability_hold_commit AFTER UPDATE ON {table} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION reliability_hold_commit()"
        )
    holder = fresh()
    holder.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
    try:
        yield holder
    finally:
        holder.execute("SELECT pg_advisory_unlock_all()")
        for table in tables:
            ddl.execute(f"DROP TRIGGER IF EXISTS reliability_hold_commit ON {table}")
        ddl.execute("DROP FUNCTION IF EXISTS reliability_hold_commit()")


def commit_in_thread(model, pk, case, outcome):
    def writer():
        try:
            with audit_app.context(case=case), transaction.atomic():
                model.objects.filter(pk=pk).update(name="after")
                outcome["pid"] = connection.connection.info.backend_pid
                outcome["socket"] = connection.connection.pgconn.socket
            outcome["committed"] = True
        except Exception as exc:
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    return thread


@MODELS
def test_backend_terminated_while_commit_is_in_flight(model, fresh, held_commit):
    obj = model.objects.create(name="before")
    observer = fresh()
    outcome = {}
    thread = commit_in_thread(model, obj.pk, "b1", outcome)
    try:
        wait_until(lambda: "pid" in outcome, "the UPDATE")
        pid = outcome["pid"]
        wait_until(lambda: waiting_on_lock(observer, pid, "COMMIT"), "COMMIT to be in flight")
        assert observer.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]
        thread.join(10)
    finally:
        held_commit.execute("SELECT pg_advisory_unlock_all()")
        thread.join(10)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), DatabaseError), outcome
    wait_until(lambda: gone(observer, pid), "the backend to exit")
    # The COMMIT never completed: no change, no event, no context row.
    state = assert_all_or_nothing(
        observer, model, obj.pk, before="before", after="after", case="b1"
    )
    assert state == "absent"
    assert contexts_with(observer, "case", "b1") == 0


@MODELS
def test_client_socket_lost_after_commit_was_sent(model, fresh, held_commit):
    """The client hangs up while its COMMIT waits: the server still commits, and the
    change and its event arrive together."""
    obj = model.objects.create(name="before")
    observer = fresh()
    outcome = {}
    thread = commit_in_thread(model, obj.pk, "b2", outcome)
    try:
        wait_until(lambda: "pid" in outcome, "the UPDATE")
        pid = outcome["pid"]
        wait_until(lambda: waiting_on_lock(observer, pid, "COMMIT"), "COMMIT to be in flight")
        # Cut the client's side of the connection under the blocked COMMIT.
        with socket.socket(fileno=os.dup(outcome["socket"])) as sock:
            sock.shutdown(socket.SHUT_RDWR)
        thread.join(10)
        # Nobody is listening any more when the COMMIT goes through.
        held_commit.execute("SELECT pg_advisory_unlock_all()")
        wait_until(lambda: gone(observer, pid), "the backend to exit")
    finally:
        held_commit.execute("SELECT pg_advisory_unlock_all()")
        thread.join(10)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), DatabaseError), outcome
    state = assert_all_or_nothing(
        observer, model, obj.pk, before="before", after="after", case="b2"
    )
    assert state == "present"


# -- (c) a deferred constraint fails at COMMIT ---------------------------------------------


@MODELS
def test_deferred_foreign_key_failure_at_commit_leaves_neither_rows_nor_events(model, fresh):
    color = Color.objects.create(name="red")
    obj = model.objects.create(name="before", color=color)
    observer = fresh()
    missing = color.pk + 1000
    reached_commit = False
    with pytest.raises(IntegrityError, match="foreign key"):
        with audit_app.context(case="c"), transaction.atomic():
            new = model.objects.create(name="orphan", color_id=missing)
            model.objects.filter(pk=obj.pk).update(name="after", color_id=missing)
            # Both statements succeeded: the FK is checked only at COMMIT.
            reached_commit = True
    assert reached_commit
    assert live_name(observer, model, new.pk) is None
    assert history(observer, model, new.pk) == []
    assert assert_all_or_nothing(observer, model, obj.pk, before="before", after="after", case="c")
    assert live_name(observer, model, obj.pk) == "before"
    assert contexts_with(observer, "case", "c") == 0


@MODELS
def test_deferred_foreign_key_failure_in_autocommit(model, fresh):
    observer = fresh()
    with pytest.raises(IntegrityError), audit_app.context(case="c2"):
        model.objects.create(name="orphan", color_id=123456)
    table = sql.quote(model.audit_event_model._meta.db_table)
    assert observer.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    assert (
        observer.execute(f"SELECT count(*) FROM {sql.quote(model._meta.db_table)}").fetchone()[0]
        == 0
    )
    assert contexts_with(observer, "case", "c2") == 0


# -- (d) a signal receiver fails during a revert -------------------------------------------


@pytest.fixture
def failing_post_save():
    def explode(sender, **kwargs):
        raise RuntimeError("receiver failed")

    connected = []

    def connect(model):
        post_save.connect(explode, sender=model, dispatch_uid="reliability-explode")
        connected.append(model)

    yield connect
    for model in connected:
        post_save.disconnect(sender=model, dispatch_uid="reliability-explode")


@MODELS
def test_failing_signal_during_revert_changes_nothing(model, fresh, failing_post_save):
    obj = model.objects.create(name="v1", size=1)
    obj.name, obj.size = "v2", 2
    obj.save()
    first = model.audit_event_model.objects.filter(audit_obj=obj).order_by("audit_id").first()
    failing_post_save(model)
    observer = fresh()
    with pytest.raises(RuntimeError, match="receiver failed"):
        audit_app.revert(first, reason="fault d")
    assert live_name(observer, model, obj.pk) == "v2"
    assert [(label, name) for label, name, _ in history(observer, model, obj.pk)] == [
        ("insert", "v1"),
        ("update", "v2"),
    ]
    assert contexts_with(observer, "audit_action", "reverted") == 0


@MODELS
def test_failing_revert_inside_the_callers_transaction_rolls_back_only_the_revert(
    model, fresh, failing_post_save
):
    """The caller catches the error and commits its own work: the revert's savepoint is
    gone, the caller's changes and their events are kept."""
    obj = model.objects.create(name="v1")
    other = model.objects.create(name="other")
    obj.name = "v2"
    obj.save()
    first = model.audit_event_model.objects.filter(audit_obj=obj).order_by("audit_id").first()
    failing_post_save(model)
    observer = fresh()
    with audit_app.context(case="d2"), transaction.atomic():
        model.objects.filter(pk=other.pk).update(name="before revert")
        with pytest.raises(RuntimeError):
            audit_app.revert(first)
        model.objects.filter(pk=other.pk).update(name="after revert")
    assert live_name(observer, model, obj.pk) == "v2"
    assert [label for label, _, _ in history(observer, model, obj.pk)] == ["insert", "update"]
    assert history(observer, model, other.pk) == [
        ("insert", "other", None),
        ("update", "before revert", {"case": "d2"}),
        ("update", "after revert", {"case": "d2"}),
    ]
    assert contexts_with(observer, "audit_action", "reverted") == 0
