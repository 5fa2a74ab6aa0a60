"""What does audit capture cost? Tracked vs untracked tables, side by side.

Run from the repository root::

    .venv/bin/python bench/tracking.py            # full run, about 17 minutes
    .venv/bin/python bench/tracking.py --quick    # tiny sizes, a smoke run (~1 minute)
    .venv/bin/python bench/tracking.py --only 1x 3e 3m   # the extra experiments

Method (the one of research/perf-baseline.md): every scenario runs its variants
interleaved inside each round, rotating their order between rounds, and reports the
median time and the MEDIAN OF PER-ROUND RATIOS against the untracked variant of the
same round (range in brackets). Every timed statement starts from the same physical
state: TRUNCATE and reload of the tables, VACUUM ANALYZE, CHECKPOINT and a fresh
database session, all untimed. Measurements disturbed by other processes on the
machine are repeated (see run_rounds). Single saves, updates and deletes also
time their floor: the untracked statement plus the writes of its event rows (and
context row) done by hand, the least any capture of the same rows can cost. Results
are discussed in docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "example_project"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import F  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

import audit_app  # noqa: E402
from audit_app import sql as audit_sql  # noqa: E402
from bench.benchapp.models import (  # noqa: E402
    Customer,
    ExpExceptAllOrder,
    ExpExecuteOrder,
    ExpHashJoinOrder,
    ExpJoinOrder,
    ExpMinimalOrder,
    ExpWholeRowOrder,
    PlainOrder,
    RowOrder,
    TrackedOrder,
)
from bench.common import execute, log, q  # noqa: E402

FULL = {
    "rows": 100_000,  # table size of scenarios 1, 3, 4; size of the big bulk_create
    "small_bulk": 10_000,
    "saves": 5_000,
    "save_rounds": 5,
    "bulk_rounds": 3,
    "update_rounds": 5,
    "delete_rounds": 5,
    "plan_sizes": (5_000, 10_000, 20_000),
    "disk_orders": 100_000,
    "disk_events": 1_000_000,
    "disk_upper_events": 100_000,
    "mem_rows": 1_000_000,
}
QUICK = {
    "rows": 4_000,
    "small_bulk": 400,
    "saves": 200,
    "save_rounds": 2,
    "bulk_rounds": 2,
    "update_rounds": 2,
    "delete_rounds": 2,
    "plan_sizes": (500, 1_000),
    "disk_orders": 2_000,
    "disk_events": 20_000,
    "disk_upper_events": 4_000,
    "mem_rows": 10_000,
}
BATCH_SIZE = 5_000
CUSTOMERS = 1_000
SOURCE = "bench_order_source"
FLOOR_EVENTS = "bench_floor_event"
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
ORDER_MODELS = (PlainOrder, TrackedOrder, RowOrder)
EXPERIMENTS = {
    "j": ExpJoinOrder,
    "a": ExpExceptAllOrder,
    "b": ExpWholeRowOrder,
    "c": ExpMinimalOrder,
    "d": ExpHashJoinOrder,
    "e": ExpExecuteOrder,
}
FILTER_LABELS = {
    "j": "(j) LEFT JOIN, per-column IS DISTINCT FROM (audit_app v1)",
    "a": "(a) EXCEPT ALL set difference",
    "b": "(b) LEFT JOIN, whole-row o.* IS DISTINCT FROM n.*",
    "c": "(c) no filter (minimal trigger)",
    "d": "(d) = (j) with nestloop and mergejoin off",
    "e": "(e) = (j) through EXECUTE",
}
EXP_LABELS = {f"exp_{v}": label for v, label in FILTER_LABELS.items()}
MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------
# Schema


def event_table(model: Any) -> str:
    return model.audit_event_model._meta.db_table


def variant_statement(variant: str, table: str) -> tuple[str, str, str]:
    """The event-writing statement of one change-filter variant of an UPDATE trigger.

    Returns (statement, REFERENCING clause, function SET clauses). Every variant writes
    the same event columns (audit_app's own select list, context lookup included);
    only the way changed rows are found differs. Each filter is written out here, so
    the experiment does not change when audit_app's generated trigger does.
    """
    spec = audit_sql.EventSpec(
        table=table,
        event_table=f"{table}_event",
        pk_column="id",
        columns=TrackedOrder.audit_event_model.audit_spec.columns,
    )
    cols = ", ".join(q(c) for c in spec.columns)
    ctx = f"(SELECT {audit_sql.CONTEXT_FUNCTION}())"
    insert = audit_sql.insert_into(spec)
    new, old = q(audit_sql.NEW_TABLE), q(audit_sql.OLD_TABLE)
    referencing = f"REFERENCING OLD TABLE AS {old} NEW TABLE AS {new}"
    settings = ""
    changed = " OR ".join(f"o.{q(c)} IS DISTINCT FROM n.{q(c)}" for c in spec.columns)
    join = (
        f"{insert}\nSELECT {audit_sql.select_list(spec, 'n', 'update', ctx)}\n"
        f"FROM {new} AS n LEFT JOIN {old} AS o ON o.id = n.id\n"
        f"WHERE o.id IS NULL OR ({changed})"
    )
    if variant == "j":
        statement = join
    elif variant == "d":
        statement = join
        settings = "SET enable_nestloop = off SET enable_mergejoin = off"
    elif variant == "e":
        statement = f"EXECUTE $exp${join}$exp$"
    elif variant == "a":
        statement = (
            f"{insert}\nSELECT {audit_sql.select_list(spec, 'd', 'update', ctx)}\n"
            f"FROM (SELECT {cols} FROM {new} EXCEPT ALL SELECT {cols} FROM {old}) AS d"
        )
    elif variant == "b":
        statement = (
            f"{insert}\nSELECT {audit_sql.select_list(spec, 'n', 'update', ctx)}\n"
            f"FROM {new} AS n LEFT JOIN {old} AS o ON o.id = n.id\n"
            "WHERE o.* IS DISTINCT FROM n.*"
        )
    elif variant == "c":
        select = audit_sql.select_list(spec, "n", "update", ctx)
        statement = f"{insert}\nSELECT {select}\nFROM {new} AS n"
        referencing = f"REFERENCING NEW TABLE AS {new}"
    else:
        raise ValueError(variant)
    return statement, referencing, settings


def tracked_update_filter() -> str:
    """How audit_app's generated UPDATE trigger (statement level) finds changed rows."""
    source = execute(
        "SELECT string_agg(pg_get_functiondef(t.tgfoid), '') FROM pg_trigger t "
        "WHERE t.tgrelid = %s::regclass AND t.tgname LIKE %s",
        [TrackedOrder._meta.db_table, "pgtrigger_audit_update%"],
    )[0][0]
    if "EXCEPT ALL" in source:
        return "EXCEPT ALL set difference, like (a)"
    if "EXECUTE $" in source:
        return "LEFT JOIN through EXECUTE, like (e)"
    if "LEFT JOIN" in source and "enable_nestloop" in source:
        return "LEFT JOIN, function pinned to hash joins, like (d)"
    if "LEFT JOIN" in source:
        return "LEFT JOIN with per-column IS DISTINCT FROM, like (j)"
    return "unknown (read the trigger function)"


def experiment_trigger_sql(variant: str, table: str) -> str:
    """Hand-written statement-level UPDATE trigger of one change-filter variant, with
    the same bypass check as audit_app's trigger."""
    statement, referencing, settings = variant_statement(variant, table)
    bypass = audit_sql.bypass_sql(
        row_count_sql="count(*)", source=f" FROM {q(audit_sql.NEW_TABLE)}"
    )
    function = f"bench_exp_{variant}_update"
    return (
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql {settings}\n"
        f"AS $body$\nBEGIN\n{bypass}\n{statement};\nRETURN NULL;\nEND\n$body$;\n"
        f"CREATE TRIGGER {function} AFTER UPDATE ON {q(table)} {referencing}\n"
        f"    FOR EACH STATEMENT EXECUTE FUNCTION {function}();"
    )


def create_schema(sizes: dict) -> None:
    log("schema: migrate --run-syncdb")
    call_command("migrate", "--run-syncdb", verbosity=0)
    # Fails loudly when the context function or a trigger is missing.
    call_command("audit", "status")
    plain, tracked_events = PlainOrder._meta.db_table, event_table(TrackedOrder)
    for model in EXPERIMENTS.values():
        table = model._meta.db_table
        execute(f"DROP TABLE IF EXISTS {table}, {table}_event")
        execute(f"CREATE TABLE {table} (LIKE {plain} INCLUDING ALL)")
        execute(
            f"ALTER TABLE {table} ADD FOREIGN KEY (customer_id) REFERENCES "
            f"{Customer._meta.db_table} (id) DEFERRABLE INITIALLY DEFERRED"
        )
        execute(f"CREATE TABLE {table}_event (LIKE {tracked_events} INCLUDING ALL)")
    for variant, model in EXPERIMENTS.items():
        execute(experiment_trigger_sql(variant, model._meta.db_table))
    execute(f"DROP TABLE IF EXISTS {FLOOR_EVENTS}")
    execute(f"CREATE TABLE {FLOOR_EVENTS} (LIKE {tracked_events} INCLUDING ALL)")

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
    # Deterministic rows shaped like the baseline's (272 B heap per live row): 21-char
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


def all_tables() -> list[str]:
    tables = [m._meta.db_table for m in ORDER_MODELS]
    tables += [event_table(TrackedOrder), event_table(RowOrder), FLOOR_EVENTS]
    for model in EXPERIMENTS.values():
        tables += [model._meta.db_table, f"{model._meta.db_table}_event"]
    return [*tables, audit_sql.CONTEXT_TABLE, audit_sql.BYPASS_TABLE]


_checkpoint_allowed = True


def reset(load: dict[Any, int] | None = None) -> None:
    """Same physical state before every timed statement; untimed.

    Empties every order, event and context table, loads ``rows`` source rows into each
    model's table with triggers off, VACUUM ANALYZE, CHECKPOINT, then a new session so
    that no plan cached by an earlier statement is reused.
    """
    global _checkpoint_allowed
    execute("SET session_replication_role = replica")  # no triggers, no FK checks on load
    execute(f"TRUNCATE {', '.join(all_tables())} RESTART IDENTITY")
    cols = ", ".join(ID_COLUMNS)
    for model, rows in (load or {}).items():
        table = model._meta.db_table
        execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {SOURCE} WHERE id <= %s", [rows])
        execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [rows])
    execute("RESET session_replication_role")
    execute("VACUUM ANALYZE")
    if _checkpoint_allowed:
        try:
            execute("CHECKPOINT")
        except Exception as exc:  # not superuser on a DATABASE_URL server
            log(f"CHECKPOINT not allowed, skipped from now on: {exc}")
            _checkpoint_allowed = False
    connection.close()
    connection.ensure_connection()
    global _backend_pid
    _backend_pid = execute("SELECT pg_backend_pid()")[0][0]
    wait_for_quiet()


# Other people's test runs share this machine's CPUs. The benchmark needs about one core
# (client and backend take turns). Before each timed statement we wait (up to
# QUIET_MAX_WAIT s) until other processes leave at least NEEDED_CORES idle; a
# measurement during which the machine was saturated anyway is repeated (see
# run_rounds). Besides wall time we measure CPU time (client process + its PostgreSQL
# backend), which waiting for a CPU does not inflate.
NEEDED_CORES = 1.2
QUIET_BUSY_CORES = max((os.cpu_count() or 1) - NEEDED_CORES, 0.3)
QUIET_MAX_WAIT = 20.0
quiet_log: list[tuple[float, float]] = []  # (seconds waited, busy cores when starting)
_backend_pid: int | None = None


def busy_cores(sample: float = 0.3) -> float:
    """Cores used by other people's processes, sampled over ``sample`` seconds."""
    before = process_ticks()
    time.sleep(sample)
    return other_cpu(before, process_ticks()) / sample


def wait_for_quiet() -> None:
    if _postmaster_pid is None or not Path("/proc/stat").exists():
        return
    start = time.perf_counter()
    busy = busy_cores()
    while busy > QUIET_BUSY_CORES and time.perf_counter() - start < QUIET_MAX_WAIT:
        time.sleep(0.5)
        busy = busy_cores()
    quiet_log.append((time.perf_counter() - start, busy))


def backend_cpu() -> float | None:
    """CPU seconds used so far by this session's backend (local server only)."""
    if _backend_pid is None:
        return None
    try:
        stat = Path(f"/proc/{_backend_pid}/stat").read_text()
        if not Path(f"/proc/{_backend_pid}/comm").read_text().startswith("postgres"):
            return None
    except OSError:  # a remote DATABASE_URL server
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(operation: Callable[[], Any]) -> float:
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


_postmaster_pid: int | None = None


def process_ticks() -> dict[int, tuple[int, int]]:
    """(parent pid, CPU ticks used so far) of every user-space process."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid != 2 and ppid != 2:  # kernel threads are children of kthreadd (pid 2)
            table[pid] = (ppid, int(fields[11]) + int(fields[12]))
    return table


def other_cpu(before: dict, after: dict) -> float:
    """CPU seconds used between two ``process_ticks()`` by processes that are neither
    this one nor the benchmark's database server (other people's work)."""
    ours = {os.getpid(), _postmaster_pid}
    ticks = 0
    for pid, (ppid, used) in after.items():
        if pid in ours or ppid in ours:
            continue
        ticks += max(0, used - before.get(pid, (0, 0))[1])
    return ticks / os.sysconf("SC_CLK_TCK")


def find_postmaster() -> None:
    """Remember the local server's postmaster, to tell our CPU use from other load."""
    global _postmaster_pid
    try:
        data_dir = execute("SHOW data_directory")[0][0]
        _postmaster_pid = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # remote server or no permission
        _postmaster_pid = None


def measure(operation: Callable[[], Any]) -> tuple[float, float | None, float | None]:
    """Wall seconds, CPU seconds (client + backend) and other load during the run.

    The last is the CPU used by user-space processes that are neither this one nor the
    database server, in cores (None when not measurable): other people's work on the
    machine. Kernel threads are left out: they mostly serve our own writes and fsyncs.
    """
    local = _postmaster_pid is not None and Path("/proc/stat").exists()
    # Like timeit: no cyclic garbage collection inside the timed part (its cost depends
    # on everything the process allocated before, not on the variant measured).
    gc.collect()
    before = process_ticks() if local else {}
    gc.disable()
    server0, client0, start = backend_cpu(), time.process_time(), time.perf_counter()
    try:
        operation()
    finally:
        wall = time.perf_counter() - start
        gc.enable()
    client, server = time.process_time() - client0, backend_cpu()
    cpu = None if server0 is None or server is None else client + server - server0
    other = other_cpu(before, process_ticks()) / wall if local else None
    last_split[:] = [client, None if cpu is None else cpu - client]
    return wall, cpu, other


last_split: list[float | None] = [None, None]  # (client, backend) CPU of the last measure()


# ---------------------------------------------------------------------------------------
# Measurement and reporting

Variant = tuple[str, Callable[[], Any], Callable[[Any], Any]]


Times = dict[str, list[float]]


# A measurement during which the machine had less than MIN_IDLE_CORES idle on average
# (other processes plus ours) is repeated from a new reset, up to MAX_ATTEMPTS times;
# the attempt with the least other load counts.
MIN_IDLE_CORES = 0.25
MAX_ATTEMPTS = 3
OTHER_LOAD_LIMIT = max((os.cpu_count() or 1) - 1 - MIN_IDLE_CORES, 0.25)
disturbed: list[dict] = []  # every measurement over the limit, kept or repeated
splits: dict[str, dict[str, list[tuple]]] = {}  # (client, backend) CPU per run_rounds title


def run_rounds(title: str, variants: list[Variant], rounds: int) -> tuple[Times, Times | None]:
    """Run every variant once per round, rotating their order.

    Returns wall seconds and CPU seconds per variant (CPU None if not measurable).
    """
    times: Times = {name: [] for name, _, _ in variants}
    cpu: Times = {name: [] for name, _, _ in variants}
    measurable = True
    for r in range(rounds):
        shift = r % len(variants)
        order = variants[shift:] + variants[:shift]
        for name, setup, operation in order:
            best = None
            for attempt in range(1, MAX_ATTEMPTS + 1):
                state = setup()
                wall, cpu_s, other = measure(lambda op=operation, st=state: op(st))
                del state
                if best is None or (other or 0.0) < (best[2] or 0.0):
                    best = (wall, cpu_s, other)
                    best_split = tuple(last_split)
                if other is None or other <= OTHER_LOAD_LIMIT:
                    break
                disturbed.append(
                    {
                        "scenario": title,
                        "variant": name,
                        "round": r + 1,
                        "attempt": attempt,
                        "other_cores": other,
                        "wall": wall,
                    }
                )
                log(f"{title} {name}: other load {other:.2f} cores, measuring again")
            wall, cpu_s, other = best
            splits.setdefault(title, {}).setdefault(name, []).append(best_split)
            times[name].append(wall)
            cpu[name].append(cpu_s or 0.0)
            measurable = measurable and cpu_s is not None
        summary = ", ".join(
            f"{name} {times[name][-1]:.3f}s/{cpu[name][-1]:.2f}cpu" for name, _, _ in variants
        )
        log(f"{title} round {r + 1}/{rounds}: {summary}")
    return times, (cpu if measurable else None)


def ratios(times: dict[str, list[float]], name: str, base: str) -> list[float]:
    return [t / b for t, b in zip(times[name], times[base], strict=True)]


def ratio_text(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def print_table(
    title: str,
    times: Times,
    *,
    cpu: Times | None,
    base: str,
    units: dict[str, int],
    unit: str,
    labels: dict[str, str],
    target: dict[str, str] | None = None,
    extra: dict[str, dict[str, str]] | None = None,
    split: dict[str, list[tuple]] | None = None,
) -> dict:
    """Print one scenario's table; return it as data for --json."""
    if split and all(b is not None for runs in split.values() for _, b in runs):
        extra = {name: dict(cols) for name, cols in (extra or {}).items()}
        for name, runs in split.items():
            client = statistics.median(c for c, _ in runs) / units[name] * 1e6
            backend = statistics.median(b for _, b in runs) / units[name] * 1e6
            extra.setdefault(name, {}).update(
                {
                    f"client CPU us/{unit}": f"{client:.0f}",
                    f"backend CPU us/{unit}": f"{backend:.0f}",
                }
            )
    print(f"\n## {title}\n")
    extra_cols = list(dict.fromkeys(k for row in (extra or {}).values() for k in row))
    header = ["variant", "median s", f"us/{unit}", f"ratio vs {base}", "target", *extra_cols]
    if cpu:
        header.append("CPU ratio (client+backend)")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    table = {}
    for name, values in times.items():
        median = statistics.median(values)
        r = ratios(times, name, base)
        row = {
            "median_s": median,
            "us_per_unit": median / units[name] * 1e6,
            "ratio_median": statistics.median(r),
            "ratio_min": min(r),
            "ratio_max": max(r),
            "times": values,
            **(extra or {}).get(name, {}),
        }
        if cpu:
            rc = ratios(cpu, name, base)
            row.update(
                cpu_median_s=statistics.median(cpu[name]),
                cpu_ratio_median=statistics.median(rc),
                cpu_ratio_min=min(rc),
                cpu_ratio_max=max(rc),
                cpu_times=cpu[name],
            )
        table[name] = row
        cells = [
            labels.get(name, name),
            f"{median:.3f}",
            f"{row['us_per_unit']:.1f}",
            "1.00" if name == base else ratio_text(r),
            (target or {}).get(name, ""),
            *[(extra or {}).get(name, {}).get(k, "") for k in extra_cols],
        ]
        if cpu:
            cells.append("1.00" if name == base else ratio_text(ratios(cpu, name, base)))
        print(" | ".join(cells))
    return table


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
    return audit_app.context(**{**metadata(0, "bulk"), "url": "/admin/orders/bulk-action/"})


_source_rows: list[dict] = []


def source_objects(model: Any, count: int) -> list:
    if len(_source_rows) < count:
        rows = execute(f"SELECT {', '.join(COLUMNS)} FROM {SOURCE} ORDER BY id LIMIT %s", [count])
        _source_rows[:] = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
        for row in _source_rows:
            if isinstance(row["data"], str):
                row["data"] = json.loads(row["data"])
    return [model(**row) for row in _source_rows[:count]]


# ---------------------------------------------------------------------------------------
# Scenarios


SAVE_LABELS = {
    "untracked": "untracked, in context",
    "tracked": "tracked (statement level), in context",
    "row": "tracked row level, in context",
    "untracked_no_ctx": "untracked, no context",
    "floor": "floor: untracked save() whose UPDATE also inserts the event and context rows",
    "tracked_no_ctx": "tracked (statement level), no context",
    **{name: f"{label}, in context" for name, label in EXP_LABELS.items()},
}


FLOOR_SAVE_STATEMENT = "bench_floor_save"


def append_event_insert(execute: Callable, sql: str, params: Any, many: bool, ctx: dict) -> Any:
    """Execute wrapper of the single-save floor: an UPDATE by primary key (the last
    parameter) carries the EXECUTE of the prepared INSERT of its event row in the same
    statement string, so in the same round trip and transaction, planned once per
    session as a trigger's statements are. The context row comes from the same
    function as for the triggers."""
    if " UPDATE " in f" {sql} " and params:
        sql = f"{sql}; EXECUTE {FLOOR_SAVE_STATEMENT}(%s)"
        params = (*params, params[-1])
    return execute(sql, params, many, ctx)


def run_saves(sizes: dict, title: str, models: dict[str, tuple[Any, bool]]) -> dict:
    """``sizes['saves']`` single-row save() calls in autocommit, one context each."""
    rows, n = sizes["rows"], sizes["saves"]
    step = rows // n
    ids = list(range(1, rows + 1, step))[:n]

    def setup(model: Any, with_context: bool) -> Callable[[], Any]:
        def inner() -> Any:
            reset({model: rows})
            objs = list(model.objects.filter(id__in=ids).order_by("id"))
            metas = [metadata(i, obj.pk) for i, obj in enumerate(objs)] if with_context else None
            return objs, metas

        return inner

    def saves(state: Any) -> None:
        objs, metas = state
        if metas is None:
            for obj in objs:
                obj.quantity += 1
                obj.save()
            return
        for obj, meta in zip(objs, metas, strict=True):
            with audit_app.context(**meta):
                obj.quantity += 1
                obj.save()

    def floor_saves(state: Any) -> None:
        insert = floor_insert_sql(PlainOrder._meta.db_table, "update")
        execute(f"PREPARE {FLOOR_SAVE_STATEMENT}(bigint) AS {insert} WHERE s.id = $1")
        with connection.execute_wrapper(append_event_insert):
            saves(state)
        written = execute(f"SELECT count(*) FROM {FLOOR_EVENTS} WHERE audit_user_id IS NOT NULL")
        assert written[0][0] == len(state[0]), "the floor must write one event per save"

    variants = [
        (name, setup(model, ctx), floor_saves if name == "floor" else saves)
        for name, (model, ctx) in models.items()
    ]
    times, cpu = run_rounds(f"{title} saves", variants, sizes["save_rounds"])
    compared = ["tracked", "row"] if "floor" in times else []
    table = print_table(
        f"{title}: {n} single-row save() in autocommit, one request context each "
        f"({sizes['save_rounds']} rounds)",
        times,
        split=splits[f"{title} saves"],
        cpu=cpu,
        base="untracked",
        units=dict.fromkeys(times, n),
        unit="save",
        labels=SAVE_LABELS,
        target={"tracked": "<= 1.15x"},
        extra=floor_extra(times, cpu, compared),
    )
    add_floor_ratios(table, times, cpu, compared)
    return table


def scenario_saves(sizes: dict) -> dict:
    return run_saves(
        sizes,
        "1",
        {
            "untracked": (PlainOrder, True),
            "tracked": (TrackedOrder, True),
            "row": (RowOrder, True),
            "floor": (PlainOrder, True),
            "untracked_no_ctx": (PlainOrder, False),
            "tracked_no_ctx": (TrackedOrder, False),
        },
    )


def scenario_saves_experiment(sizes: dict) -> dict:
    """Single saves through the change-filter variants of scenario 3 (UPDATE triggers
    only: the experiment tables have no insert or delete trigger, which saves don't fire)."""
    models = {"untracked": (PlainOrder, True), "tracked": (TrackedOrder, True)}
    models.update({f"exp_{v}": (model, True) for v, model in EXPERIMENTS.items()})
    return run_saves(sizes, "1x", models)


def scenario_bulk_create(sizes: dict) -> tuple[dict, dict]:
    big, small = sizes["rows"], sizes["small_bulk"]

    def setup(model: Any, count: int) -> Callable[[], Any]:
        def inner() -> Any:
            reset()
            return model, source_objects(model, count)

        return inner

    def create(state: Any) -> None:
        model, objs = state
        with transaction.atomic():
            model.objects.bulk_create(objs, batch_size=BATCH_SIZE)

    variants = []
    for model, name in ((PlainOrder, "untracked"), (TrackedOrder, "tracked"), (RowOrder, "row")):
        variants.append((f"{name}_{big}", setup(model, big), create))
        variants.append((f"{name}_{small}", setup(model, small), create))
    times, cpu = run_rounds("2/5 bulk_create", variants, sizes["bulk_rounds"])

    def only(values: Times | None, size: int) -> Times | None:
        if values is None:
            return None
        return {k.rsplit("_", 1)[0]: v for k, v in values.items() if k.endswith(f"_{size}")}

    big_times = only(times, big)
    s2 = print_table(
        f"2. bulk_create of {big} rows, batch_size={BATCH_SIZE}, one transaction "
        f"({sizes['bulk_rounds']} rounds)",
        big_times,
        cpu=only(cpu, big),
        base="untracked",
        units=dict.fromkeys(big_times, big),
        unit="row",
        labels={"tracked": "tracked (statement level)", "row": "tracked row level"},
        target={"tracked": "<= 1.15x"},
    )
    # Scenario 5: us/row at 100k over us/row at 10k, per round, per model.
    print(f"\n## 5. us/row of a {big}-row bulk_create over a {small}-row one, same round\n")
    print(
        "model | us/row at small | us/row at big | per-round ratio big/small | target"
        + (" | CPU ratio big/small" if cpu else "")
    )
    print("--- | --- | --- | --- | ---" + (" | ---" if cpu else ""))
    s5 = {}
    for name in ("untracked", "tracked", "row"):
        b, s = times[f"{name}_{big}"], times[f"{name}_{small}"]
        per_row = [(tb / big) / (ts / small) for tb, ts in zip(b, s, strict=True)]
        small_us = statistics.median(s) / small * 1e6
        big_us = statistics.median(b) / big * 1e6
        small_ratio = ratios(times, f"{name}_{small}", f"untracked_{small}")
        s5[name] = {
            "us_per_row_small": small_us,
            "us_per_row_big": big_us,
            "ratio_median": statistics.median(per_row),
            "ratio_min": min(per_row),
            "ratio_max": max(per_row),
            "small_ratio_vs_untracked": statistics.median(small_ratio),
            "small_times": s,
            "big_times": b,
        }
        target = "<= 1.2x" if name in ("tracked", "row") else "(reference)"
        line = f"{name} | {small_us:.1f} | {big_us:.1f} | {ratio_text(per_row)} | {target}"
        if cpu:
            cb, cs = cpu[f"{name}_{big}"], cpu[f"{name}_{small}"]
            cpu_per_row = [(b_ / big) / (s_ / small) for b_, s_ in zip(cb, cs, strict=True)]
            s5[name].update(
                cpu_ratio_median=statistics.median(cpu_per_row),
                cpu_ratio_min=min(cpu_per_row),
                cpu_ratio_max=max(cpu_per_row),
            )
            line += f" | {ratio_text(cpu_per_row)}"
        print(line)
    print(
        f"\n{small}-row bulk_create vs untracked of the same size: "
        + ", ".join(
            f"{n} {ratio_text(ratios(times, f'{n}_{small}', f'untracked_{small}'))}"
            for n in ("tracked", "row")
        )
    )
    return s2, s5


def update_all(model: Any) -> None:
    model.objects.update(quantity=F("quantity") + 1, is_paid=True)


def floor_insert_sql(source_table: str, label: str) -> str:
    """One INSERT ... SELECT of ``source_table``'s rows as events: the physical floor."""
    spec = audit_sql.EventSpec(
        table=source_table,
        event_table=FLOOR_EVENTS,
        pk_column="id",
        columns=TrackedOrder.audit_event_model.audit_spec.columns,
    )
    ctx = f"(SELECT {audit_sql.CONTEXT_FUNCTION}())"
    return (
        f"{audit_sql.insert_into(spec)} SELECT {audit_sql.select_list(spec, 's', label, ctx)} "
        f"FROM {q(source_table)} AS s"
    )


BIG_WORK_MEM = "64MB"


def floor_extra(times: Times, cpu: Times | None, names: list[str]) -> dict[str, dict[str, str]]:
    extra = {}
    for name in names:
        extra[name] = {"ratio vs floor": ratio_text(ratios(times, name, "floor"))}
        if cpu:
            extra[name]["CPU ratio vs floor"] = ratio_text(ratios(cpu, name, "floor"))
    return extra


def add_floor_ratios(table: dict, times: Times, cpu: Times | None, names: list[str]) -> None:
    for name in names:
        r = ratios(times, name, "floor")
        table[name].update(
            floor_ratio_median=statistics.median(r), floor_ratio_min=min(r), floor_ratio_max=max(r)
        )
        if cpu:
            r = ratios(cpu, name, "floor")
            table[name].update(
                floor_cpu_ratio_median=statistics.median(r),
                floor_cpu_ratio_min=min(r),
                floor_cpu_ratio_max=max(r),
            )


def bulk_setup(model: Any, rows: int, work_mem: str | None = None) -> Callable[[], Any]:
    def inner() -> Any:
        reset({model: rows})
        if work_mem:  # session setting: transition tables and the filter's sorts use it
            execute(f"SET work_mem = '{work_mem}'")
        return model

    return inner


def scenario_update(sizes: dict) -> dict:
    rows = sizes["rows"]

    def setup(model: Any, work_mem: str | None = None) -> Callable[[], Any]:
        return bulk_setup(model, rows, work_mem)

    def update(model: Any) -> None:
        with bulk_context():
            update_all(model)

    def floor(model: Any) -> None:
        with bulk_context(), transaction.atomic():
            update_all(model)
            execute(floor_insert_sql(model._meta.db_table, "update"))

    variants: list[Variant] = [
        ("untracked", setup(PlainOrder), update),
        ("tracked", setup(TrackedOrder), update),
        ("row", setup(RowOrder), update),
        ("floor", setup(PlainOrder), floor),
    ]
    variants += [(f"exp_{v}", setup(model), update) for v, model in EXPERIMENTS.items()]
    times, cpu = run_rounds("3 update", variants, sizes["update_rounds"])
    check_update_events(min(rows, 2_000))
    compared = ["tracked", "row", *(f"exp_{v}" for v in EXPERIMENTS)]
    table = print_table(
        f"3. QuerySet.update(quantity=F('quantity') + 1, is_paid=True) of {rows} rows in a "
        f"context, fresh session ({sizes['update_rounds']} rounds)",
        times,
        cpu=cpu,
        base="untracked",
        units=dict.fromkeys(times, rows),
        unit="row",
        labels={
            "tracked": "tracked (statement level, audit_app's filter)",
            "row": "tracked row level",
            "floor": "floor: UPDATE + INSERT..SELECT in one transaction",
            **EXP_LABELS,
        },
        target={"tracked": "<= 1.8x", "floor": "(baseline 1.59x)"},
        extra=floor_extra(times, cpu, compared),
    )
    add_floor_ratios(table, times, cpu, compared)
    return table


def scenario_trigger_time(sizes: dict) -> dict:
    """The UPDATE trigger's own time, from EXPLAIN ANALYZE of the same statement.

    ``EXPLAIN ANALYZE`` reports the time spent in each AFTER trigger separately from the
    statement's execution time. Their ratio within one statement does not drift with
    the machine's load the way two separately timed statements do, so it resolves the
    differences between change filters that scenario 3's ratios can blur.
    """
    rows = sizes["rows"]
    variants = [("tracked", TrackedOrder, None), ("tracked_wm", TrackedOrder, BIG_WORK_MEM)]
    variants[1:1] = [(f"exp_{v}", model, None) for v, model in EXPERIMENTS.items()]
    variants.append(("row", RowOrder, None))
    results: dict[str, dict[str, list[float]]] = {
        name: {"trigger_ms": [], "total_ms": []} for name, _, _ in variants
    }
    rounds = sizes["update_rounds"]
    for r in range(rounds):
        shift = r % len(variants)
        for name, model, work_mem in variants[shift:] + variants[:shift]:
            bulk_setup(model, rows, work_mem)()
            table = model._meta.db_table
            with bulk_context():
                plan = [
                    line
                    for (line,) in execute(
                        f"EXPLAIN (ANALYZE) UPDATE {table} "
                        "SET quantity = quantity + 1, is_paid = TRUE"
                    )
                ]
            trigger = sum(
                float(line.split("time=")[1].split()[0])
                for line in plan
                if line.startswith("Trigger ") and ("audit" in line or "bench_exp" in line)
            )
            total = float(
                next(line for line in plan if line.startswith("Execution Time"))
                .split(":")[1]
                .split()[0]
            )
            results[name]["trigger_ms"].append(trigger)
            results[name]["total_ms"].append(total)
        log(
            f"3e round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {results[n]['trigger_ms'][-1]:.0f}ms" for n, _, _ in variants)
        )
    print(
        f"\n## 3e. Time inside the UPDATE trigger, EXPLAIN ANALYZE of a {rows}-row "
        f"QuerySet.update()-equivalent in a context ({rounds} rounds)\n"
    )
    print(
        "variant | trigger ms (median) | statement ms (median) | trigger share | "
        "in-statement ratio total / (total - trigger)"
    )
    print("--- | --- | --- | --- | ---")
    labels = {
        "tracked": "audit_app's trigger",
        **EXP_LABELS,
        "tracked_wm": f"audit_app's trigger, session work_mem={BIG_WORK_MEM}",
        "row": f"row level (sum over {rows} calls)",
    }
    for name, _, _ in variants:
        trig, total = results[name]["trigger_ms"], results[name]["total_ms"]
        inside = [t / (t - g) for g, t in zip(trig, total, strict=True)]
        results[name]["ratio_median"] = statistics.median(inside)
        print(
            f"{labels[name]} | {statistics.median(trig):.0f} ({min(trig):.0f}-{max(trig):.0f})"
            f" | {statistics.median(total):.0f} | "
            f"{statistics.median(g / t for g, t in zip(trig, total, strict=True)):.0%} | "
            f"{ratio_text(inside)}"
        )
    return results


def check_update_events(rows: int) -> None:
    """The experiment triggers must write what audit_app writes (checked after a round)."""
    for name, model in (("tracked", TrackedOrder), *EXPERIMENTS.items()):
        table = event_table(model) if name == "tracked" else f"{model._meta.db_table}_event"
        reset({model: rows})
        with bulk_context():
            update_all(model)
        count, contexts = execute(
            f"SELECT count(*), count(DISTINCT {q(audit_sql.CONTEXT)}) FROM {table} "
            f"WHERE {q(audit_sql.CONTEXT)} IS NOT NULL"
        )[0]
        if (count, contexts) != (rows, 1):
            raise AssertionError(f"{name}: {count} events, {contexts} contexts after update")


def backend_peak_mib() -> float | None:
    """Peak resident memory of this session's backend so far (local server only)."""
    try:
        status = Path(f"/proc/{_backend_pid}/status").read_text()
    except OSError:
        return None
    kib = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0
    )
    return kib / 1024


def scenario_plan_cache(sizes: dict) -> dict:
    """A plan cached by a 1-row UPDATE, reused by a big one in the same session."""
    results: dict[str, dict] = {}

    def measure_update(model: Any, rows: int, poison: bool) -> tuple[float, float | None]:
        reset({model: rows})
        if poison:  # what a single save() earlier in the same session does
            with bulk_context():
                model.objects.filter(pk=rows).update(quantity=F("quantity") + 1, is_paid=True)
        with bulk_context():
            seconds = timed(lambda: update_all(model))
        return seconds, backend_peak_mib()

    small, large, rows_max = sizes["plan_sizes"][0], sizes["plan_sizes"][-1], sizes["rows"]
    cases = [("tracked", TrackedOrder, size) for size in (small, large, rows_max)]
    cases += [("exp_j", EXPERIMENTS["j"], size) for size in sizes["plan_sizes"]]
    cases.append(("exp_b", EXPERIMENTS["b"], small))
    for v in "acde":
        cases += [(f"exp_{v}", EXPERIMENTS[v], size) for size in (large, rows_max)]
    base: dict[int, float] = {}
    quadratic: set[str] = set()
    print("\n## 3p. Plan cached from a 1-row UPDATE earlier in the same session\n")
    print(
        "variant | rows | untracked s | fresh plan s | after 1-row UPDATE s | slowdown | "
        "backend peak RSS MiB (fresh / after)"
    )
    print("--- | --- | --- | --- | --- | --- | ---")
    labels = {"tracked": "audit_app's trigger", **EXP_LABELS}
    for name, model, rows in cases:
        if name in quadratic:
            print(f"{labels[name]} | {rows} | | | skipped: quadratic at a smaller size | |")
            continue
        if rows not in base:
            base[rows] = measure_update(PlainOrder, rows, poison=False)[0]
        fresh, fresh_rss = measure_update(model, rows, poison=False)
        poisoned, poisoned_rss = measure_update(model, rows, poison=True)
        if poisoned > 5 * fresh:
            quadratic.add(name)
        results[f"{name}_{rows}"] = {
            "rows": rows,
            "untracked_s": base[rows],
            "fresh_s": fresh,
            "poisoned_s": poisoned,
            "fresh_peak_mib": fresh_rss,
            "poisoned_peak_mib": poisoned_rss,
        }
        log(f"3p {name} {rows}: fresh {fresh:.3f}s, after 1-row update {poisoned:.3f}s")
        rss = f"{fresh_rss or 0:.0f} / {poisoned_rss or 0:.0f}"
        print(
            f"{labels[name]} | {rows} | {base[rows]:.3f} | {fresh:.3f} | {poisoned:.3f} | "
            f"{poisoned / fresh:.1f}x | {rss}"
        )
    return results


def scenario_update_memory(sizes: dict) -> dict:
    """Time and backend memory of one big UPDATE per change filter, fresh sessions.

    Hash joins and sorts stay within work_mem (they spill to disk); a hashed set
    operation does not, in PostgreSQL 16. Peak RSS includes the shared buffers the
    backend touched, so compare variants, not absolute values.
    """
    rows = sizes["mem_rows"]
    variants = [
        ("untracked", PlainOrder, False),
        ("tracked", TrackedOrder, False),
        ("tracked_1row", TrackedOrder, True),
        ("exp_c", EXPERIMENTS["c"], False),
        ("exp_j", EXPERIMENTS["j"], False),
        ("exp_d", EXPERIMENTS["d"], False),
        ("exp_d_1row", EXPERIMENTS["d"], True),
    ]
    labels = {
        "untracked": "untracked",
        "tracked": "audit_app's trigger",
        "tracked_1row": "audit_app's trigger, after a 1-row UPDATE in the session",
        **EXP_LABELS,
        "exp_d_1row": f"{EXP_LABELS['exp_d']}, after a 1-row UPDATE in the session",
    }
    print(f"\n## 3m. One UPDATE of {rows} rows in a context: time and backend memory\n")
    print("variant | s | ratio vs untracked | backend peak RSS MiB | minus untracked's")
    print("--- | --- | --- | --- | ---")
    results = {}
    for name, model, poison in variants:
        reset({model: rows})
        with bulk_context():
            if poison:  # the plan is cached for a 1-row transition table
                model.objects.filter(pk=rows).update(quantity=F("quantity") + 1)
            seconds = timed(lambda m=model: update_all(m))
        results[name] = {"s": seconds, "peak_mib": backend_peak_mib() or 0.0}
        log(f"3m {name}: {seconds:.1f}s, peak {results[name]['peak_mib']:.0f} MiB")
    base = results["untracked"]
    for name, _, _ in variants:
        r = results[name]
        print(
            f"{labels[name]} | {r['s']:.2f} | {r['s'] / base['s']:.2f}x | {r['peak_mib']:.0f} | "
            f"{r['peak_mib'] - base['peak_mib']:+.0f}"
        )
    return results


def scenario_delete(sizes: dict) -> dict:
    rows = sizes["rows"]

    def setup(model: Any, work_mem: str | None = None) -> Callable[[], Any]:
        return bulk_setup(model, rows, work_mem)

    def delete(model: Any) -> None:
        with bulk_context():
            model.objects.all().delete()

    def floor(model: Any) -> None:
        with bulk_context(), transaction.atomic():
            execute(floor_insert_sql(model._meta.db_table, "delete"))
            model.objects.all().delete()

    def floor_cte(model: Any) -> None:
        # The deleted rows pass through a tuplestore, as they do into a transition table.
        insert = floor_insert_sql("d", "delete")
        with bulk_context():
            execute(f"WITH d AS (DELETE FROM {model._meta.db_table} RETURNING *) {insert}")

    # Which SQL does QuerySet.delete() send? (Fast delete: no row fetch, no signals.)
    statements = {}
    for model in (PlainOrder, TrackedOrder, RowOrder):
        reset({model: 10})
        with CaptureQueriesContext(connection) as captured:
            model.objects.all().delete()
        statements[model.__name__] = [s["sql"][:200] for s in captured.captured_queries]
    variants = [
        ("untracked", setup(PlainOrder), delete),
        ("tracked", setup(TrackedOrder), delete),
        ("row", setup(RowOrder), delete),
        ("floor", setup(PlainOrder), floor),
        ("floor_cte", setup(PlainOrder), floor_cte),
        ("tracked_wm", setup(TrackedOrder, BIG_WORK_MEM), delete),
    ]
    times, cpu = run_rounds("4 delete", variants, sizes["delete_rounds"])
    compared = ["tracked", "row", "floor_cte", "tracked_wm"]
    table = print_table(
        f"4. QuerySet.delete() of {rows} rows in a context ({sizes['delete_rounds']} rounds)",
        times,
        cpu=cpu,
        base="untracked",
        units=dict.fromkeys(times, rows),
        unit="row",
        labels={
            "tracked": "tracked (statement level)",
            "row": "tracked row level",
            "floor": "floor: INSERT..SELECT + DELETE in one transaction",
            "floor_cte": "floor, one statement: WITH d AS (DELETE .. RETURNING *) INSERT",
            "tracked_wm": f"tracked, session work_mem={BIG_WORK_MEM}",
        },
        extra=floor_extra(times, cpu, compared),
        target={"tracked": "<= 1.3x of floor"},
    )
    add_floor_ratios(table, times, cpu, compared)
    print("\nSQL sent by QuerySet.delete():")
    for name, sqls in statements.items():
        print(f"  {name}: {sqls}")
    table["statements"] = statements
    return table


def relation_sizes(table: str) -> dict:
    (heap, toast, total, rows) = execute(
        "SELECT pg_relation_size(c.oid), "
        "coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0), "
        f"pg_total_relation_size(c.oid), (SELECT count(*) FROM {q(table)}) "
        "FROM pg_class c WHERE c.oid = %s::regclass",
        [table],
    )[0]
    indexes = execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), "
        "pg_relation_size(i.indexrelid) FROM pg_index i WHERE i.indrelid = %s::regclass "
        "ORDER BY 1",
        [table],
    )
    return {
        "rows": rows,
        "heap": heap,
        "toast": toast,
        "total": total,
        "indexes": {name: {"def": d, "bytes": size} for name, d, size in indexes},
    }


def fill_requests(total: int, max_id: int, mix: list[tuple[int, float]], seed: int) -> int:
    """Update events from requests; each request updates k random orders in one statement
    inside its own context; requests are grouped 200 per transaction to keep the fill
    fast (storage is the same: every request has its own context row either way)."""
    rng = random.Random(seed)
    sizes, weights = zip(*mix, strict=True)
    written = requests = 0
    while written < total:
        with transaction.atomic():
            for _ in range(200):
                if written >= total:
                    break
                k = min(rng.choices(sizes, weights)[0], total - written)
                ids = rng.sample(range(1, max_id + 1), k)
                meta = metadata(requests, ids[0])
                meta["ip"] = f"10.0.{requests % 250}.{requests % 200}"
                with audit_app.context(**meta):
                    TrackedOrder.objects.filter(id__in=ids).update(
                        quantity=F("quantity") + 1, is_paid=~F("is_paid")
                    )
                written += k
                requests += 1
    return requests


SHADOW_INDEXES = {
    "bench_alt_obj_only": "btree (id)",
    "bench_alt_ts_only": "btree (audit_created_at)",
    "bench_alt_ts_brin": "brin (audit_created_at)",
}


def scenario_disk(sizes: dict) -> dict:
    orders, events = sizes["disk_orders"], sizes["disk_events"]
    events_table = event_table(TrackedOrder)
    for name, definition in SHADOW_INDEXES.items():
        execute(f"CREATE INDEX {name} ON {events_table} USING {definition}")
    mix = [(1, 0.6), (5, 0.3), (50, 0.1)]
    mean_k = sum(k * w for k, w in mix)
    result: dict[str, Any] = {"mix": mix}

    # Realistic: imported in batches, then changed by requests that share a context.
    reset()
    log(f"6 disk: {orders} orders imported in batches of 1000, one context per batch")
    objs = source_objects(TrackedOrder, orders)
    for b in range(0, orders, 1000):
        with (
            audit_app.context(
                command="import_orders",
                user=1,
                username="importer",
                batch=b // 1000,
                request_id=uuid.uuid4().hex,
            ),
            transaction.atomic(),
        ):
            TrackedOrder.objects.bulk_create(objs[b : b + 1000])
    del objs
    log(f"6 disk: {events - orders} update events from requests (k per request: {mix})")
    start = time.perf_counter()
    requests = fill_requests(events - orders, orders, mix, seed=6)
    log(f"6 disk: {requests} requests in {time.perf_counter() - start:.0f}s")
    execute("VACUUM ANALYZE")
    realistic = {
        "events": relation_sizes(events_table),
        "context": relation_sizes(audit_sql.CONTEXT_TABLE),
        "requests": requests,
    }
    result["realistic"] = realistic

    # Upper bound: one context per event (single-row updates, each its own request).
    upper_events = sizes["disk_upper_events"]
    reset({TrackedOrder: orders})
    realistic["live"] = relation_sizes(TrackedOrder._meta.db_table)  # freshly loaded
    log(f"6 disk: upper bound, {upper_events} single-row updates, one context each")
    fill_requests(upper_events, orders, [(1, 1.0)], seed=7)
    execute("VACUUM ANALYZE")
    result["upper"] = {
        "events": relation_sizes(events_table),
        "context": relation_sizes(audit_sql.CONTEXT_TABLE),
    }

    for run in (realistic, result["upper"]):
        # Alternative indexes were maintained during the fill but are not audit_app's.
        shadow = {name: run["events"]["indexes"].pop(name)["bytes"] for name in SHADOW_INDEXES}
        run["events"]["total"] -= sum(shadow.values())
        run["events"]["shadow"] = shadow
    execute(f"DROP INDEX {', '.join(SHADOW_INDEXES)}")

    print(f"\n## 6. Disk per 1M events of {TrackedOrder._meta.label} (after VACUUM)\n")
    print(
        f"Realistic fill: {orders} inserts in {orders // 1000} import contexts, then "
        f"{events - orders} update events from {requests} requests (k rows per request: "
        f"{mix}, mean {mean_k:.1f}); {realistic['context']['rows']} context rows, "
        f"{realistic['events']['rows'] / max(realistic['context']['rows'], 1):.2f} events "
        f"per context. Upper bound: {upper_events} single-row updates, one context each, "
        "scaled.\n"
    )
    print("part | realistic MiB per 1M events | upper bound (1 context/event) MiB per 1M")
    print("--- | --- | ---")

    def per_1m(run: dict, value: float) -> float:
        return value * 1_000_000 / run["events"]["rows"] / MiB

    runs = (realistic, result["upper"])
    for label, key in (("event heap", "heap"), ("event TOAST", "toast")):
        print(f"{label} | " + " | ".join(f"{per_1m(r, r['events'][key]):.1f}" for r in runs))
    for name, index in realistic["events"]["indexes"].items():
        label = f"index {name} `{index['def'].split(' USING ')[1]}`"
        cells = [f"{per_1m(r, r['events']['indexes'][name]['bytes']):.1f}" for r in runs]
        print(f"{label} | " + " | ".join(cells))
    for run in runs:
        ev = per_1m(run, run["events"]["total"])
        cx = per_1m(run, run["context"]["total"])
        run["per_1m"] = {"events_mib": ev, "context_mib": cx, "total_mib": ev + cx}
    for label, key in (
        ("event table total", "events_mib"),
        ("audit_app_context total (heap + 2 indexes)", "context_mib"),
        ("**total incl. context** (target <= 400)", "total_mib"),
    ):
        print(f"{label} | " + " | ".join(f"{r['per_1m'][key]:.1f}" for r in runs))
    print("\nAlternative indexes maintained during the same fills (not counted above):\n")
    print("index | realistic MiB per 1M | upper bound MiB per 1M")
    print("--- | --- | ---")
    for name, definition in SHADOW_INDEXES.items():
        cells = [f"{per_1m(r, r['events']['shadow'][name]):.1f}" for r in runs]
        print(f"{name} `{definition}` | " + " | ".join(cells))
    ctx = realistic["context"]
    ctx_rows = max(ctx["rows"], 1)
    print(
        f"\nPer row: event {realistic['events']['total'] / realistic['events']['rows']:.0f} B "
        f"(heap {realistic['events']['heap'] / realistic['events']['rows']:.0f} B), context "
        f"{ctx['total'] / ctx_rows:.0f} B (heap {ctx['heap'] / ctx_rows:.0f} B; indexes "
        + ", ".join(f"{n} {i['bytes'] / ctx_rows:.0f} B" for n, i in ctx["indexes"].items())
        + f"); live order {realistic['live']['total'] / realistic['live']['rows']:.0f} B "
        f"(heap {realistic['live']['heap'] / realistic['live']['rows']:.0f} B)."
    )
    reset()
    return result


def repo_commit() -> str:
    """The commit of the code measured (a COMMIT file beside bench/ wins, for snapshots)."""
    snapshot = REPO_ROOT / "COMMIT"
    if snapshot.exists():
        return snapshot.read_text().strip()
    git = REPO_ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return "unknown"


def server_facts() -> dict:
    names = [
        "server_version",
        "shared_buffers",
        "max_wal_size",
        "autovacuum",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "work_mem",
        "hash_mem_multiplier",
        "jit",
        "max_parallel_workers_per_gather",
    ]
    facts = {n: execute(f"SHOW {n}")[0][0] for n in names}
    facts["jit_available"] = execute("SELECT pg_jit_available()")[0][0]
    return facts


SCENARIOS = ("1", "2", "3", "3p", "4", "6")
EXTRA_SCENARIOS = ("1x", "3e", "3m")  # run only when named with --only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SCENARIOS + EXTRA_SCENARIOS,
        help="run these scenarios only (2 includes 5). Not in the default run: 1x, saves "
        "through the scenario-3 change-filter variants; 3e, the UPDATE trigger's own time "
        "per variant from EXPLAIN ANALYZE; 3m, time and memory of a 1M-row UPDATE",
    )
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--rounds", type=int, help="override every scenario's round count")
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    if args.rounds:
        sizes.update({k: args.rounds for k in sizes if k.endswith("_rounds")})
    wanted = set(args.only or SCENARIOS)
    if "3m" in wanted:
        sizes["source_rows"] = sizes["mem_rows"]
    started = time.perf_counter()
    create_schema(sizes)
    find_postmaster()
    facts = server_facts()
    import psycopg

    print("# audit_app capture benchmark" + (" (--quick)" if args.quick else ""))
    print(
        f"\nPostgreSQL {facts['server_version']}, Django {django.get_version()}, "
        f"psycopg {psycopg.__version__}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    print("server: " + ", ".join(f"{k}={v}" for k, v in facts.items() if k != "server_version"))
    facts["commit"] = repo_commit()
    facts["update_filter"] = tracked_update_filter()
    print(f"audit_app at commit {facts['commit']}; its UPDATE trigger: {facts['update_filter']}")
    results: dict[str, Any] = {"sizes": sizes, "server": facts}
    if "1" in wanted:
        results["1"] = scenario_saves(sizes)
    if "1x" in wanted:
        results["1x"] = scenario_saves_experiment(sizes)
    if "2" in wanted:
        results["2"], results["5"] = scenario_bulk_create(sizes)
    if "3" in wanted:
        results["3"] = scenario_update(sizes)
    if "3e" in wanted:
        results["3e"] = scenario_trigger_time(sizes)
    if "3m" in wanted:
        results["3m"] = scenario_update_memory(sizes)
    if "3p" in wanted:
        results["3p"] = scenario_plan_cache(sizes)
    if "4" in wanted:
        results["4"] = scenario_delete(sizes)
    if "6" in wanted:
        results["6"] = scenario_disk(sizes)
    elapsed = time.perf_counter() - started
    results["elapsed_s"] = elapsed
    busy = [b for _, b in quiet_log]
    results["quiet_gate"] = quiet_log
    results["disturbed"] = disturbed
    kept = sum(1 for d in disturbed if d["attempt"] == MAX_ATTEMPTS)
    print(
        f"\nOther load: {len(disturbed)} measurements had other processes using more than "
        f"{OTHER_LOAD_LIMIT:.2f} cores and were repeated; {kept} of them still were after "
        f"{MAX_ATTEMPTS} attempts (the least disturbed attempt was kept)."
    )
    print(
        f"\nTotal time {elapsed:.0f}s. Quiet gate: {len(quiet_log)} timed statements, "
        f"{sum(w for w, _ in quiet_log):.0f}s spent waiting for other load to stop; "
        f"{sum(b > QUIET_BUSY_CORES for b in busy)} started anyway with more than "
        f"{QUIET_BUSY_CORES} cores busy elsewhere "
        f"(median busy at start {statistics.median(busy or [0]):.2f})."
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
