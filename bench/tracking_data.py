"""The data of the write-path benchmark (``bench/tracking.py``).

The schema and its source rows, the same physical state before every timed statement
(``reset``), the request contexts the writes run in, and the SQL of the floors: the
event (and context) rows written by hand. Import after ``django.setup()``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from django.core.management import call_command
from django.db.models import F

import audit_app
from audit_app import partitioning
from audit_app import sql as audit_sql
from bench import machine
from bench.benchapp.models import Customer, FollowedOrder, PlainOrder, RowOrder, TrackedOrder
from bench.harness import execute, log, q

BATCH_SIZE = 5_000
CUSTOMERS = 1_000
SOURCE = "bench_order_source"
FLOOR_EVENTS = "bench_floor_event"
# The floor of a followed table: a copy of its event table, the follow index included.
FLOOR_FOLLOWED_EVENTS = "bench_floor_followed_event"
COLUMNS = (
    "quantity",
    "amount",
    "reference",
    "notes",
    "is_paid",
    "placed_at",
    "customer_id",
    "data",
)
ID_COLUMNS = ("id", *COLUMNS)
ORDER_MODELS = (PlainOrder, TrackedOrder, RowOrder, FollowedOrder)
# A session setting tried against the default 4MB: transition tables and sorts use it.
BIG_WORK_MEM = "64MB"


def event_table(model: Any) -> str:
    return model.audit_event_model._meta.db_table


# ---------------------------------------------------------------------------------------
# Schema


def partition_event_tables(interval: str) -> None:
    """Partition every event table of the benchmark by ``interval`` (``--partition``),
    as ``manage.py audit partition`` does: partitions for now and two intervals ahead,
    and the default partition."""
    for model in (Customer, TrackedOrder, RowOrder, FollowedOrder):
        if not partitioning.interval_of(event_table(model)):
            partitioning.convert(event_table(model), interval, concurrently=False)


def copy_table(source: str, target: str) -> None:
    """``target``: an empty copy of the event table ``source``, with its indexes, and
    partitioned the same way when ``source`` is (the floors write the same rows to the
    same kind of table)."""
    execute(f"DROP TABLE IF EXISTS {target}")
    parts = execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        [source],
    )
    by = f" PARTITION BY RANGE ({audit_sql.CREATED_AT})" if parts else ""
    execute(f"CREATE TABLE {target} (LIKE {source} INCLUDING ALL){by}")
    for name, bound in parts:
        partition = q(target + name.removeprefix(source))
        execute(f"CREATE TABLE {partition} PARTITION OF {target} {bound}")


def create_schema(sizes: dict, partition: str | None = None) -> None:
    """Tables, triggers, customers and the source rows every scenario loads from;
    ``partition`` partitions the event tables (and the floors' copies) by that interval."""
    log("schema: migrate --run-syncdb")
    call_command("migrate", "--run-syncdb", verbosity=0)
    if partition:
        log(f"schema: event tables partitioned by {partition}")
        partition_event_tables(partition)
    # Fails loudly when the context function or a trigger is missing.
    call_command("audit", "status")
    plain, tracked_events = PlainOrder._meta.db_table, event_table(TrackedOrder)
    copy_table(tracked_events, FLOOR_EVENTS)
    copy_table(event_table(FollowedOrder), FLOOR_FOLLOWED_EVENTS)

    rows = max(sizes["rows"], sizes["disk_orders"], sizes.get("source_rows", 0))
    log(f"schema: {CUSTOMERS} customers, {rows} source orders")
    execute(f"TRUNCATE {Customer._meta.db_table} RESTART IDENTITY CASCADE")
    execute(
        f"INSERT INTO {Customer._meta.db_table} (name) "
        "SELECT 'Customer ' || g FROM generate_series(1, %s) g",
        [CUSTOMERS],
    )
    execute(f"DROP TABLE IF EXISTS {SOURCE}")
    execute(f"CREATE TABLE {SOURCE} (LIKE {plain})")
    # Deterministic rows of a typical web-shop order (273 B heap per live row): 21-char
    # reference, 120-char notes, a small JSON dict.
    execute(
        f"""
        INSERT INTO {SOURCE} ({", ".join(ID_COLUMNS)})
        SELECT g,
               1 + (g::bigint * 7919) % 100,
               ((g::bigint * 104729) % 10000000) / 100.0,
               'ORD-' || lpad(g::text, 8, '0') || '-' || left(md5(g::text), 8),
               substr(repeat(md5(g::text || 'n') || ' ', 4), 1, 120),
               g % 3 = 0,
               timestamptz '2026-01-01 00:00:00+00' + g * interval '37 seconds',
               1 + g % {CUSTOMERS},
               jsonb_build_object('channel', (ARRAY['web', 'shop', 'phone'])[1 + g % 3],
                                  'priority', g % 5)
        FROM generate_series(1, {int(rows)}) g
        """
    )


def describe_update_trigger() -> str:
    """How the tracked model's statement-level UPDATE trigger finds changed rows."""
    source, settings = execute(
        "SELECT string_agg(pg_get_functiondef(t.tgfoid), ''), "
        "string_agg(array_to_string(p.proconfig, ', '), '') "
        "FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
        "WHERE t.tgrelid = %s::regclass AND t.tgname LIKE %s",
        [TrackedOrder._meta.db_table, "pgtrigger_audit_update%"],
    )[0]
    if not source:
        return "none found (read the trigger functions)"
    shape = "LEFT JOIN of new and old rows" if "LEFT JOIN" in source else "new rows only"
    return f"{shape}; function settings: {settings or 'none'}"


def all_tables() -> list[str]:
    tables = [m._meta.db_table for m in ORDER_MODELS]
    tables += [event_table(m) for m in (TrackedOrder, RowOrder, FollowedOrder)]
    tables += [FLOOR_EVENTS, FLOOR_FOLLOWED_EVENTS, event_table(Customer)]
    return [*tables, audit_sql.CONTEXT_TABLE, audit_sql.BYPASS_TABLE]


class _Checkpoint:
    allowed = True


def reset(load: dict[Any, int] | None = None) -> None:
    """Same physical state before every timed statement; untimed.

    Empties every order, event and context table, loads ``rows`` source rows into each
    model's table with triggers off, VACUUM ANALYZE, CHECKPOINT, then a new session so
    that no plan cached by an earlier statement is reused, then waits for a quiet machine.
    """
    execute("SET session_replication_role = replica")  # no triggers, no FK checks on load
    execute(f"TRUNCATE {', '.join(all_tables())} RESTART IDENTITY")
    cols = ", ".join(ID_COLUMNS)
    for model, rows in (load or {}).items():
        table = model._meta.db_table
        execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {SOURCE} WHERE id <= %s", [rows])
        execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [rows])
    execute("RESET session_replication_role")
    execute("VACUUM ANALYZE")
    if _Checkpoint.allowed:
        try:
            execute("CHECKPOINT")
        except Exception as exc:  # not superuser on a DATABASE_URL server
            log(f"CHECKPOINT not allowed, skipped from now on: {exc}")
            _Checkpoint.allowed = False
    machine.new_session()
    machine.wait_for_quiet()


def bulk_setup(model: Any, rows: int, work_mem: str | None = None) -> Callable[[], Any]:
    """A setup for run_rounds: ``rows`` rows in ``model``'s table, fresh session."""

    def inner() -> Any:
        reset({model: rows})
        if work_mem:  # session setting: transition tables and the filter's sorts use it
            execute(f"SET work_mem = '{work_mem}'")
        return model

    return inner


class _SourceRows:
    rows: list[dict] = []


def source_objects(model: Any, count: int) -> list:
    """``count`` unsaved instances of ``model`` with the source table's values."""
    cache = _SourceRows.rows
    if len(cache) < count:
        rows = execute(f"SELECT {', '.join(COLUMNS)} FROM {SOURCE} ORDER BY id LIMIT %s", [count])
        cache[:] = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
        for row in cache:
            if isinstance(row["data"], str):
                row["data"] = json.loads(row["data"])
    return [model(**row) for row in cache[:count]]


# ---------------------------------------------------------------------------------------
# Contexts and statements


def metadata(i: int, obj_id: Any) -> dict[str, Any]:
    """What AuditContextMiddleware records for a request."""
    user = 1 + i % 50
    return {
        "user": user,
        "username": f"user{user}",
        "url": f"/orders/{obj_id}/",
        "method": "POST",
        "ip": "127.0.0.1",
        "request_id": uuid.uuid4().hex,
    }


def bulk_context() -> audit_app.context:
    """The context of an admin bulk action."""
    return audit_app.context(**{**metadata(0, "bulk"), "url": "/admin/orders/bulk-action/"})


def update_all(model: Any) -> None:
    """The bulk update every update scenario times."""
    model.objects.update(quantity=F("quantity") + 1, is_paid=True)


def floor_insert_sql(source_table: str, label: str, event_table: str = FLOOR_EVENTS) -> str:
    """One INSERT ... SELECT of ``source_table``'s rows as events: the physical floor.

    The same event columns as the tracked model's triggers write, the context row from
    the same context function, into a copy of its event table (same indexes).
    """
    spec = audit_sql.EventSpec(
        table=source_table,
        event_table=event_table,
        pk_column="id",
        columns=TrackedOrder.audit_event_model.audit_spec.columns,
    )
    ctx = f"(SELECT {audit_sql.CONTEXT_FUNCTION}())"
    return (
        f"{audit_sql.insert_into(spec)} SELECT {audit_sql.select_list(spec, 's', label, ctx)} "
        f"FROM {q(source_table)} AS s"
    )
