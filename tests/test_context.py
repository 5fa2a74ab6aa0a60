"""Context: attached to events, immutable per event, transaction-local, write-only."""

import asyncio
import math

import pytest
from asgiref.sync import sync_to_async
from django.db import DataError, connection, connections, transaction

import audit_app
from audit_app import sql
from audit_app.models import Context
from tests.trackapp.models import RowWidget, Widget

pytestmark = pytest.mark.django_db


@pytest.fixture
def partitioned_models():
    return [Widget, RowWidget]


def contexts(model=Widget):
    return [
        e.audit_context.metadata if e.audit_context else None
        for e in model.audit_event_model.objects.order_by("audit_id").select_related(
            "audit_context"
        )
    ]


@pytest.mark.parametrize("model", [Widget, RowWidget])
@pytest.mark.usefixtures("layout")
def test_events_inside_a_context_carry_it(model):
    model.objects.create(name="outside")
    with audit_app.context(user=None, reason="import", batch=42):
        w = model.objects.create(name="inside")
        model.objects.filter(pk=w.pk).update(size=3)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {model._meta.db_table} SET name = 'a%%b' WHERE id = %s", [w.pk])
            cursor.execute(f"UPDATE {model._meta.db_table} SET name = '100%' WHERE size = 3")
        w.delete()
    expected = {"user": None, "reason": "import", "batch": 42}
    assert contexts(model) == [None] + [expected] * 5
    names = list(
        model.audit_event_model.objects.values_list("name", flat=True).order_by("audit_id")
    )
    assert names[3:5] == ["a%b", "100%"]


def test_nested_contexts_merge_for_the_inner_block_only():
    with audit_app.context(user=None, a=1, b=1):
        Widget.objects.create(name="outer")
        with audit_app.context(b=2, c=3):
            assert audit_app.current_context() == {"user": None, "a": 1, "b": 2, "c": 3}
            Widget.objects.create(name="inner")
        Widget.objects.create(name="outer again")
    assert audit_app.current_context() is None
    assert contexts() == [
        {"user": None, "a": 1, "b": 1},
        {"user": None, "a": 1, "b": 2, "c": 3},
        {"user": None, "a": 1, "b": 1},
    ]


def test_a_later_change_of_the_context_does_not_rewrite_earlier_events():
    with transaction.atomic(), audit_app.context(user=None, step="one"):
        Widget.objects.create(name="a")
        audit_app.update_context(step="two")
        Widget.objects.create(name="b")
    assert contexts() == [{"user": None, "step": "one"}, {"user": None, "step": "two"}]


def test_one_context_row_per_distinct_context_per_transaction():
    rows = Widget.objects.bulk_create([Widget(name=str(i)) for i in range(30)])
    before = Context.objects.count()
    with transaction.atomic(), audit_app.context(user=None, job="batch"):
        for row in rows:
            row.size = 1
            row.save()
        RowWidget.objects.bulk_create([RowWidget(name=str(i)) for i in range(30)])
    assert Context.objects.count() - before == 1


def test_a_statement_that_changes_nothing_writes_no_context_row():
    Widget.objects.create(name="a")
    with audit_app.context(user=None, job="noop"):
        Widget.objects.filter(name="missing").update(size=1)
        Widget.objects.update(name="a")  # matches, changes nothing
    assert Context.objects.count() == 0


def test_context_is_transaction_local():
    with transaction.atomic():
        with audit_app.context(user=None, who="first"):
            Widget.objects.create(name="a")
        # Same transaction, context closed: the settings must not leak.
        Widget.objects.create(name="b")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO trackapp_widget (name, size, data, secret_token) VALUES ('c', 0, '{}', '')"
            )
    assert contexts() == [{"user": None, "who": "first"}, None, None]


def test_reads_are_not_prefixed(sql_log):
    from audit_app.models import AuditEvent

    with audit_app.context(user=None, who="reader"):
        list(Widget.objects.all())
        list(AuditEvent.objects.across(Widget).without_diffs())  # a read-only WITH query
        Widget.objects.create(name="w")
    statements = [q["sql"] for q in sql_log.captured_queries]
    assert [s for s in statements if "set_config" in s] == [s for s in statements if "INSERT" in s]
    assert len([s for s in statements if "set_config" in s]) == 1


def test_named_parameters_carry_the_context():
    with audit_app.context(user=None, via="named"), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trackapp_widget (name, size, data, secret_token) "
            "VALUES (%(name)s, %(size)s, '{}', '')",
            {"name": "100% named", "size": 4},
        )
    assert contexts() == [{"user": None, "via": "named"}]
    assert Widget.audit_event_model.objects.get().name == "100% named"


def test_the_context_travels_as_parameters_not_in_the_statement_text():
    """The text the driver parses is the same in every request: its cache of parsed
    statements keeps working, and no metadata is spliced into SQL."""
    sent = []

    def record(execute, sql_text, params, many, ctx):
        sent.append((sql_text, params))
        return execute(sql_text, params, many, ctx)

    with connection.execute_wrapper(record):  # inside ours: sees what we pass on
        for who in ("first", "it's \\ second"):
            with audit_app.context(user=None, who=who):
                Widget.objects.create(name="w")
    (first_sql, first_params), (second_sql, second_params) = sent
    assert first_sql == second_sql
    assert "who" not in first_sql and "first" not in first_sql
    assert '"who":"first"' in first_params[0] and "second" in second_params[0]
    assert contexts() == [{"user": None, "who": "first"}, {"user": None, "who": "it's \\ second"}]


def test_writing_cte_carries_the_context():
    with audit_app.context(user=None, via="cte"), connection.cursor() as cursor:
        cursor.execute(
            "WITH moved AS (INSERT INTO trackapp_widget (name, size, data, secret_token) "
            "VALUES ('cte', 0, '{}', '') RETURNING id) SELECT count(*) FROM moved"
        )
        assert cursor.fetchone() == (1,)
    assert contexts() == [{"user": None, "via": "cte"}]


def test_executemany_carries_the_context():
    with audit_app.context(user=None, via="executemany"), connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO trackapp_widget (name, size, data, secret_token) VALUES (%s, 0, '{}', '')",
            [("a",), ("b",)],
        )
    assert contexts() == [{"user": None, "via": "executemany"}] * 2


@pytest.mark.django_db(transaction=True)
def test_decorator_and_async_context():
    # sync_to_async runs the ORM in another thread with its own connection, outside
    # a test transaction: hence transaction=True.
    @audit_app.context(user=None, via="decorator")
    def create():
        Widget.objects.create(name="d")

    create()

    @audit_app.context(user=None, via="async decorator")
    async def acreate():
        await sync_to_async(Widget.objects.create)(name="ad")

    async def with_block():
        async with audit_app.context(user=None, via="async with"):
            await sync_to_async(Widget.objects.create)(name="aw")

    asyncio.run(acreate())
    asyncio.run(with_block())
    # Close the worker thread's connection so the test database can be dropped.
    asyncio.run(sync_to_async(connections.close_all)())
    assert [c["via"] for c in contexts()] == ["decorator", "async decorator", "async with"]


def test_nan_is_refused_with_a_clear_error():
    with pytest.raises(audit_app.ContextError, match=r"score is nan.*cannot store NaN"):
        with audit_app.context(score=math.nan):
            pass


def test_nul_characters_are_replaced_not_dropped():
    with audit_app.context(user=None, note="a\x00b", nested={"k\x00": ["x\x00"]}):
        Widget.objects.create(name="n")
    assert contexts() == [{"user": None, "note": "a\ufffdb", "nested": {"k\ufffd": ["x\ufffd"]}}]


def test_quotes_and_backslashes_survive():
    tricky = "it's \\ a ' quote'); DROP TABLE trackapp_widget; --"
    with audit_app.context(user=None, tricky=tricky):
        Widget.objects.create(name="q")
    assert contexts()[0]["tricky"] == tricky


@pytest.mark.parametrize("model", [Widget, RowWidget])
@pytest.mark.usefixtures("layout")
def test_every_event_carries_the_contexts_user(model, django_user_model):
    user = django_user_model.objects.create_user("carol")
    model.objects.create(name="nobody")
    with audit_app.context(user=user.pk, username="carol"):
        w = model.objects.create(name="u")
        model.objects.filter(pk=w.pk).update(size=2)
        audit_app.backfill(model.objects.filter(pk=w.pk), force=True)
        w.delete()
    rows = model.audit_event_model.objects.order_by("audit_id").select_related("audit_context")
    assert [(e.audit_label, e.audit_user_id) for e in rows] == [
        ("insert", None),
        ("insert", user.pk),
        ("update", user.pk),
        ("snapshot", user.pk),
        ("delete", user.pk),
    ]
    assert {e.audit_context.user_id for e in rows[1:]} == {user.pk}


def test_a_user_key_the_user_table_cannot_hold_is_refused():
    with pytest.raises(DataError), audit_app.context(user="not-a-key"):
        Widget.objects.create(name="u")


def _context_ids(model=Widget):
    return list(
        model.audit_event_model.objects.order_by("audit_id").values_list(
            "audit_context_id", flat=True
        )
    )


@pytest.mark.django_db(transaction=True)
def test_one_context_row_per_context_frame_across_transactions():
    """Autocommit saves (or a command's many transactions) in one context share one
    row, instead of one per transaction."""
    with audit_app.context(user=None, job="autocommit"):
        for i in range(5):
            Widget.objects.create(name=str(i))  # five transactions
        with transaction.atomic():
            RowWidget.objects.create(name="row")
        audit_app.update_context(step="two")  # a new frame: a new row
        Widget.objects.create(name="after")
    ids = _context_ids()
    assert len(set(ids[:5])) == 1 and ids[5] != ids[0]
    assert _context_ids(RowWidget) == ids[:1]
    assert Context.objects.count() == 2
    assert Context.objects.get(pk=ids[0]).metadata == {"user": None, "job": "autocommit"}
    assert ids[0] >= sql.CONTEXT_KEY_MIN


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_first_transaction_leaves_the_frame_a_working_row():
    with audit_app.context(user=None, job="retry"):
        with pytest.raises(RuntimeError), transaction.atomic():
            Widget.objects.create(name="lost")
            raise RuntimeError
        Widget.objects.create(name="kept")
    (context_id,) = _context_ids()
    assert Context.objects.get(pk=context_id).metadata["job"] == "retry"


def _write_with(cursor, metadata, key, name):
    # The driver's own cursor: settings made by hand, not by audit_app.context.
    cursor = getattr(cursor, "cursor", cursor)
    cursor.execute(
        "SELECT set_config('audit.context', %s, true), set_config('audit.context_key', %s, true)",
        [metadata, str(key)],
    )
    cursor.execute(
        "INSERT INTO trackapp_widget (name, size, data, secret_token) VALUES (%s, 0, '{}', '')",
        [name],
    )


@pytest.mark.django_db(transaction=True)
def test_a_key_collision_never_shares_a_row_between_different_contexts():
    key = sql.CONTEXT_KEY_MIN + 12345
    for metadata, name in (('{"who": "a"}', "a"), ('{"who": "b"}', "b"), ('{"who": "a"}', "c")):
        with transaction.atomic(), connection.cursor() as cursor:
            _write_with(cursor, metadata, key, name)
    ids = _context_ids()
    assert ids[0] == ids[2] == key and ids[1] != key
    assert Context.objects.get(pk=ids[1]).metadata == {"who": "b"}


@pytest.mark.django_db(transaction=True)
def test_a_second_connection_never_waits_for_an_open_transaction_holding_the_key():
    """One thread, two connections, one frame: waiting for the first connection's
    open transaction would deadlock through the client. The second takes its own row."""
    key = sql.CONTEXT_KEY_MIN + 777
    other = connections.create_connection("default")
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            _write_with(cursor, '{"who": "a"}', key, "first")
            with other.cursor() as cursor2:
                cursor2.execute("SET statement_timeout = '10s'")
                cursor2.execute("BEGIN")
                _write_with(cursor2, '{"who": "a"}', key, "second")
                cursor2.execute("COMMIT")
    finally:
        other.close()
    first, second = (
        Widget.audit_event_model.objects.get(name=n).audit_context_id for n in ("first", "second")
    )
    assert first == key and second != key
    assert Context.objects.get(pk=second).metadata == {"who": "a"}


@pytest.mark.django_db(transaction=True)
def test_repeatable_read_transactions_take_their_own_row():
    key = sql.CONTEXT_KEY_MIN + 4242
    with transaction.atomic(), connection.cursor() as cursor:
        _write_with(cursor, '{"who": "a"}', key, "committed")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _write_with(cursor, '{"who": "a"}', key, "repeatable")
    ids = _context_ids()
    assert ids[0] == key and ids[1] != key


@pytest.mark.django_db(transaction=True)
def test_many_contexts_in_one_transaction_hold_at_most_one_lock():
    """Each keyed context row is guarded by a lock held until commit; a loop of
    contexts inside one transaction must not fill PostgreSQL's lock table."""
    with transaction.atomic():
        for i in range(100):
            with audit_app.context(user=None, item=i):
                Widget.objects.create(name=str(i))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            )
            assert cursor.fetchone()[0] == 1
    assert Context.objects.count() == 100
    items = [c["item"] for c in contexts()]
    assert items == list(range(100))
