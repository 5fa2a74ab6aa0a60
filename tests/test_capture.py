"""Exactly one event per effective change, at statement and row level."""

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F

from tests.trackapp.models import Color, RowWidget, Widget

pytestmark = pytest.mark.django_db

LEVELS = [Widget, RowWidget]


@pytest.fixture
def partitioned_models():
    return LEVELS


def events(model, **filters):
    return list(model.audit_event_model.objects.filter(**filters).order_by("audit_id"))


def labels(model, **filters):
    return [e.audit_label for e in events(model, **filters)]


@pytest.mark.parametrize("model", LEVELS)
@pytest.mark.usefixtures("layout")
class TestOrmPaths:
    def test_create_records_the_new_row(self, model):
        w = model.objects.create(name="a", size=3)
        (event,) = events(model)
        assert (event.audit_label, event.audit_obj_id, event.name, event.size) == (
            "insert",
            w.pk,
            "a",
            3,
        )
        assert event.audit_created_at is not None

    def test_save_with_a_change_records_one_update(self, model):
        w = model.objects.create(name="a")
        w.name = "b"
        w.save()
        assert labels(model) == ["insert", "update"]
        assert events(model)[-1].name == "b"

    def test_noop_save_records_nothing(self, model):
        w = model.objects.create(name="a")
        w.save()
        model.objects.filter(pk=w.pk).update(name="a")
        assert labels(model) == ["insert"]

    def test_delete_records_the_old_row(self, model):
        w = model.objects.create(name="gone", size=7)
        pk = w.pk
        w.delete()
        last = events(model)[-1]
        assert (last.audit_label, last.audit_obj_id, last.name, last.size) == (
            "delete",
            pk,
            "gone",
            7,
        )

    def test_bulk_create_records_each_row(self, model):
        model.objects.bulk_create([model(name=str(i)) for i in range(50)])
        assert labels(model).count("insert") == 50

    def test_bulk_update_records_only_changed_rows(self, model):
        rows = model.objects.bulk_create([model(name=str(i)) for i in range(10)])
        for row in rows[:4]:
            row.size = 99
        model.objects.bulk_update(rows, ["size"])
        updates = events(model, audit_label="update")
        assert sorted(e.audit_obj_id for e in updates) == sorted(r.pk for r in rows[:4])

    def test_queryset_update_records_effective_changes_only(self, model):
        model.objects.bulk_create([model(name="x", size=i % 2) for i in range(20)])
        changed = model.objects.filter(size=0).count()
        assert model.objects.update(size=1) == 20
        assert len(events(model, audit_label="update")) == changed == 10

    def test_bulk_update_after_single_updates_in_the_same_session(self, model):
        # The trigger's statement plan is cached per session after the first calls.
        rows = model.objects.bulk_create([model(name=str(i)) for i in range(300)])
        for step, row in enumerate(rows[:6]):
            model.objects.filter(pk=row.pk).update(size=step + 1)
        model.objects.update(size=99)
        assert len(events(model, audit_label="update")) == 6 + 300

    def test_queryset_delete_records_each_row(self, model):
        model.objects.bulk_create([model(name=str(i)) for i in range(15)])
        model.objects.all().delete()
        assert labels(model).count("delete") == 15

    def test_raw_sql_is_captured(self, model):
        table = model._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (name, size, secret_token) VALUES ('raw', 1, '') RETURNING id"
                if model is RowWidget
                else f"INSERT INTO {table} (name, size, data, secret_token) "
                "VALUES ('raw', 1, '{}', '') RETURNING id"
            )
            pk = cursor.fetchone()[0]
            cursor.execute(f"UPDATE {table} SET size = size + 1 WHERE id = %s", [pk])
            assert cursor.rowcount == 1
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])
        assert labels(model) == ["insert", "update", "delete"]

    def test_primary_key_change_is_recorded(self, model):
        w = model.objects.create(name="a")
        model.objects.filter(pk=w.pk).update(id=w.pk + 1000)
        updates = events(model, audit_label="update")
        assert [e.audit_obj_id for e in updates] == [w.pk + 1000]

    def test_primary_key_change_without_other_changes_in_bulk(self, model):
        rows = model.objects.bulk_create([model(name=str(i)) for i in range(5)])
        model.objects.update(id=F("id") + 10_000)
        updates = events(model, audit_label="update")
        assert sorted(e.audit_obj_id for e in updates) == sorted(r.pk + 10_000 for r in rows)

    def test_set_null_cascade_is_recorded(self, model):
        color = Color.objects.create(name="red")
        model.objects.create(name="a", color=color)
        color.delete()  # ORM SET_NULL runs an UPDATE of the widgets
        last = events(model)[-1]
        assert (last.audit_label, last.color_id) == ("update", None)

    def test_database_cascade_is_recorded(self, model):
        table = model._meta.db_table
        with connection.cursor() as cursor:
            # Let PostgreSQL itself cascade, as a DB-level ON DELETE CASCADE does (the
            # test's transaction rolls this DDL back).
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
                [table],
            )
            (constraint,) = cursor.fetchone()
            cursor.execute(
                f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}", ADD CONSTRAINT '
                f'"{constraint}" FOREIGN KEY (color_id) REFERENCES trackapp_color (id) '
                "ON DELETE CASCADE"
            )
        color = Color.objects.create(name="red")
        model.objects.create(name="a", color=color)
        model.objects.create(name="b", color=color)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM trackapp_color WHERE id = %s", [color.pk])
        assert labels(model).count("delete") == 2

    def test_savepoint_rollback_records_nothing_but_outer_work_stays(self, model):
        with transaction.atomic():
            model.objects.create(name="kept")
            try:
                with transaction.atomic():
                    model.objects.create(name="rolled back")
                    model.objects.update(size=5)
                    raise RuntimeError("roll back the savepoint")
            except RuntimeError:
                pass
        assert [e.name for e in events(model)] == ["kept"]


def test_orm_cascade_records_children():
    from shop.models import Customer, Order, OrderItem, Product

    customer = Customer.objects.create(name="c", email="c@example.org")
    order = Order.objects.create(customer=customer)
    product = Product.objects.create(sku="p", name="p", price=1)
    OrderItem.objects.bulk_create([OrderItem(order=order, product=product) for _ in range(3)])
    order.delete()
    assert OrderItem.audit_event_model.objects.filter(audit_label="delete").count() == 3
    assert Order.audit_event_model.objects.filter(audit_label="delete").count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model", LEVELS)
def test_rolled_back_transaction_records_nothing(model):
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.create(name="a")
        model.objects.update(size=3)
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {model._meta.db_table} (id, name) VALUES (NULL, 'x')")
    assert events(model) == []
    assert model.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model", LEVELS)
def test_concurrent_writers_record_exactly_the_committed_changes(model):
    rows = model.objects.bulk_create([model(name=f"w{i}") for i in range(8)])
    baseline = model.audit_event_model.objects.count()
    committed = []
    lock = threading.Lock()

    def worker(index):
        mine = rows[index]
        try:
            for step in range(25):
                with transaction.atomic():
                    model.objects.filter(pk=mine.pk).update(size=step + 1)
                    if step % 5 == 4:
                        transaction.set_rollback(True)
                        continue
                with lock:
                    committed.append(mine.pk)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each worker commits 20 of its 25 updates; a rolled-back step leaves the next
    # update still effective because the value differs from the committed one.
    assert len(committed) == 8 * 20
    assert model.audit_event_model.objects.count() - baseline == len(committed)


class _PrivateMemoryWatch(threading.Thread):
    """Samples a local backend's private memory (RssAnon; RSS would also count the
    shared buffers it touches) until stopped, keeping the peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.path = f"/proc/{pid}/status"
        self.peak_kib = self.sample()
        self.done = threading.Event()

    def sample(self):
        with open(self.path) as status:
            line = next(x for x in status if x.startswith("RssAnon:"))
        return int(line.split()[1])

    def run(self):
        while not self.done.wait(0.005):
            self.peak_kib = max(self.peak_kib, self.sample())


@pytest.mark.django_db(transaction=True)
def test_a_bulk_update_after_a_single_save_keeps_bounded_memory():
    """PL/pgSQL keeps the trigger statement's first plan for the session. Planned for a
    one-row save, a join became a nested loop (quadratic: 40 s for 20k rows) and a set
    difference an in-memory hash (+333 MiB for 1M rows). Pinned to hash joins, which
    spill, the big update stays fast and small."""
    rows = 250_000
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trackapp_widget (name, size, data, secret_token) "
            "SELECT 'w' || g, 0, '{}', '' FROM generate_series(1, %s) AS g",
            [rows],
        )
    connection.close()  # a new session: nothing planned yet
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '120s'")  # quadratic would hang, not fail
        cursor.execute(
            "UPDATE trackapp_widget SET size = 1 WHERE id = (SELECT min(id) FROM trackapp_widget)"
        )
        cursor.execute("SELECT pg_backend_pid()")
        try:
            watch = _PrivateMemoryWatch(cursor.fetchone()[0])
        except OSError:
            pytest.skip("the database server runs on another machine (DATABASE_URL)")
        before = watch.peak_kib
        watch.start()
        try:
            cursor.execute("UPDATE trackapp_widget SET size = size + 1")
        finally:
            watch.done.set()
            watch.join()
    growth_mib = (watch.peak_kib - before) / 1024
    assert Widget.audit_event_model.objects.filter(audit_label="update").count() == rows + 1
    # Measured at 250k rows: 17 MiB (work_mem-bound); the in-memory set difference 40.
    assert growth_mib < 25, f"backend grew by {growth_mib:.0f} MiB for {rows} updated rows"
