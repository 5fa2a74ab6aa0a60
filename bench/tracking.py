"""What does audit capture cost? Tracked vs untracked tables, side by side.

Run from the repository root::

    .venv/bin/python bench/tracking.py            # the default scenarios, about 17 minutes
    .venv/bin/python bench/tracking.py --quick    # tiny sizes, a smoke run (~1 minute)
    .venv/bin/python bench/tracking.py --only update delete update-memory
    .venv/bin/python bench/tracking.py --partition month   # event tables partitioned

Method: every scenario runs its variants interleaved inside each round, rotating their
order between rounds, and reports the median time and the median of per-round ratios
against the untracked variant of the same round (range in brackets), so that drift of
the machine between rounds cancels out. Every timed statement starts from the same
physical state: TRUNCATE and reload of the tables, VACUUM ANALYZE, CHECKPOINT and a
fresh database session, all untimed. Measurements disturbed by other processes on the
machine are repeated (``bench/harness.py``). Single saves, updates and deletes also time
their floor: the untracked statement plus the writes of its event rows (and context
row) done by hand in the same transaction, the least any capture of the same rows can
cost. Results are discussed in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "example_project"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.db.models import F  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

import audit_app  # noqa: E402
from audit_app import sql as audit_sql  # noqa: E402
from bench import machine, tracking_disk  # noqa: E402
from bench.benchapp.models import FollowedOrder, PlainOrder, RowOrder, TrackedOrder  # noqa: E402
from bench.harness import (  # noqa: E402
    RatioTable,
    Rounds,
    Variant,
    describe_environment,
    execute,
    log,
    print_environment,
    print_load_summary,
    print_table,
    q,
    ratio_summary,
    ratio_text,
    ratios,
    rotated,
    run_rounds,
    wall_time,
)
from bench.tracking_data import (  # noqa: E402
    BATCH_SIZE,
    BIG_WORK_MEM,
    FLOOR_EVENTS,
    FLOOR_FOLLOWED_EVENTS,
    bulk_context,
    bulk_setup,
    create_schema,
    describe_update_trigger,
    event_table,
    floor_insert_sql,
    metadata,
    reset,
    source_objects,
    update_all,
)

FULL = {
    "rows": 100_000,  # table size of single-save, update, delete; size of the big bulk_create
    "small_bulk": 10_000,
    "saves": 5_000,
    "save_rounds": 5,
    "bulk_rounds": 3,
    "update_rounds": 5,
    "delete_rounds": 5,
    "plan_sizes": (5_000, 20_000),  # and "rows"
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
TRACKED = "tracked (statement level)"
ROW = "tracked row level"
FOLLOWED = "tracked, followed from its customer (+ follow index)"


# ---------------------------------------------------------------------------------------
# single-save


SAVE_LABELS = {
    "untracked": "untracked, in context",
    "tracked": f"{TRACKED}, in context",
    "row": f"{ROW}, in context",
    "followed": f"{FOLLOWED}, in context",
    "untracked_no_ctx": "untracked, no context",
    "floor": "floor: untracked save() whose UPDATE also inserts the event and context rows",
    "tracked_no_ctx": f"{TRACKED}, no context",
}
SAVE_VARIANTS = {
    "untracked": (PlainOrder, True),
    "tracked": (TrackedOrder, True),
    "row": (RowOrder, True),
    "followed": (FollowedOrder, True),
    "floor": (PlainOrder, True),
    "untracked_no_ctx": (PlainOrder, False),
    "tracked_no_ctx": (TrackedOrder, False),
}
FLOOR_SAVE_STATEMENT = "bench_floor_save"


def append_event_insert(execute_: Callable, sql: str, params: Any, many: bool, ctx: dict) -> Any:
    """Execute wrapper of the single-save floor: an UPDATE by primary key (the last
    parameter) carries the EXECUTE of the prepared INSERT of its event row in the same
    statement string, so in the same round trip and transaction, planned once per
    session as a trigger's statements are. The context row comes from the same
    function as for the triggers."""
    if " UPDATE " in f" {sql} " and params:
        sql = f"{sql}; EXECUTE {FLOOR_SAVE_STATEMENT}(%s)"
        params = (*params, params[-1])
    return execute_(sql, params, many, ctx)


def save_each(state: Any) -> None:
    """One save() per object, each in its own request context (if it has one)."""
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


def floor_save_each(state: Any) -> None:
    """The floor of save_each: the same saves, each UPDATE with its event row."""
    insert = floor_insert_sql(PlainOrder._meta.db_table, "update")
    execute(f"PREPARE {FLOOR_SAVE_STATEMENT}(bigint) AS {insert} WHERE s.id = $1")
    with connection.execute_wrapper(append_event_insert):
        save_each(state)
    written = execute(f"SELECT count(*) FROM {FLOOR_EVENTS} WHERE audit_user_id IS NOT NULL")
    assert written[0][0] == len(state[0]), "the floor must write one event per save"


def single_save(sizes: dict) -> dict:
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

    variants: list[Variant] = [
        (name, setup(model, ctx), floor_save_each if name == "floor" else save_each)
        for name, (model, ctx) in SAVE_VARIANTS.items()
    ]
    rounds = run_rounds("single-save", variants, sizes["save_rounds"])
    return RatioTable(
        f"single-save: {n} single-row save() in autocommit, one request context each "
        f"({sizes['save_rounds']} rounds)",
        rounds,
        base="untracked",
        units=dict.fromkeys(rounds.times, n),
        unit="save",
        labels=SAVE_LABELS,
        targets={"tracked": "<= 1.25x", "followed": "<= 1.25x"},
        also_against="floor",
        also_for=("tracked", "row", "followed"),
        show_cpu_split=True,
    ).print()


# ---------------------------------------------------------------------------------------
# bulk-create and per-row-cost: one set of rounds, two tables

BULK_MODELS = {
    "untracked": PlainOrder,
    "tracked": TrackedOrder,
    "row": RowOrder,
    "followed": FollowedOrder,
}
_bulk_rounds: dict[tuple[int, int, int], Rounds] = {}


def bulk_create_rounds(sizes: dict) -> Rounds:
    """bulk_create of the big and the small size for every model, in the same rounds."""
    big, small = sizes["rows"], sizes["small_bulk"]
    key = (big, small, sizes["bulk_rounds"])
    if key in _bulk_rounds:
        return _bulk_rounds[key]

    def setup(model: Any, count: int) -> Callable[[], Any]:
        def inner() -> Any:
            reset()
            return model, source_objects(model, count)

        return inner

    def create(state: Any) -> None:
        model, objs = state
        with transaction.atomic():
            model.objects.bulk_create(objs, batch_size=BATCH_SIZE)

    variants: list[Variant] = []
    for name, model in BULK_MODELS.items():
        variants.append((f"{name}_{big}", setup(model, big), create))
        variants.append((f"{name}_{small}", setup(model, small), create))
    _bulk_rounds[key] = run_rounds("bulk-create", variants, sizes["bulk_rounds"])
    return _bulk_rounds[key]


def of_size(rounds: Rounds, size: int) -> Rounds:
    """The variants of one size, named by model."""

    def pick(values: dict) -> dict:
        return {k.rsplit("_", 1)[0]: v for k, v in values.items() if k.endswith(f"_{size}")}

    return Rounds(
        times=pick(rounds.times),
        cpu_times=pick(rounds.cpu_times),
        cpu_measurable=rounds.cpu_measurable,
        splits=pick(rounds.splits),
    )


def bulk_create(sizes: dict) -> dict:
    big = sizes["rows"]
    rounds = of_size(bulk_create_rounds(sizes), big)
    return RatioTable(
        f"bulk-create: bulk_create of {big} rows, batch_size={BATCH_SIZE}, one transaction "
        f"({sizes['bulk_rounds']} rounds)",
        rounds,
        base="untracked",
        units=dict.fromkeys(rounds.times, big),
        unit="row",
        labels={"tracked": TRACKED, "row": ROW, "followed": FOLLOWED},
        targets={"tracked": "<= 1.15x", "followed": "<= 1.15x"},
    ).print()


def per_row_cost(sizes: dict) -> dict:
    """us/row of the big bulk_create over us/row of the small one, per round, per model."""
    big, small = sizes["rows"], sizes["small_bulk"]
    rounds = bulk_create_rounds(sizes)
    times, cpu = rounds.times, rounds.cpu
    headers = ["model", "us/row at small", "us/row at big", "per-round ratio big/small"]
    headers += ["target", *(["CPU ratio big/small"] if cpu else [])]
    result, rows = {}, []
    for name in BULK_MODELS:
        b, s = times[f"{name}_{big}"], times[f"{name}_{small}"]
        per_row = [(tb / big) / (ts / small) for tb, ts in zip(b, s, strict=True)]
        small_ratio = ratios(times, f"{name}_{small}", f"untracked_{small}")
        result[name] = {
            "us_per_row_small": statistics.median(s) / small * 1e6,
            "us_per_row_big": statistics.median(b) / big * 1e6,
            **ratio_summary(per_row),
            "small_ratio_vs_untracked": statistics.median(small_ratio),
            "small_times": s,
            "big_times": b,
        }
        row = [
            name,
            f"{result[name]['us_per_row_small']:.1f}",
            f"{result[name]['us_per_row_big']:.1f}",
            ratio_text(per_row),
            "<= 1.2x" if name in ("tracked", "row") else "(reference)",
        ]
        if cpu:
            cb, cs = cpu[f"{name}_{big}"], cpu[f"{name}_{small}"]
            cpu_per_row = [(b_ / big) / (s_ / small) for b_, s_ in zip(cb, cs, strict=True)]
            result[name].update(ratio_summary(cpu_per_row, "cpu_"))
            row.append(ratio_text(cpu_per_row))
        rows.append(row)
    print_table(
        headers,
        rows,
        f"per-row-cost: us/row of a {big}-row bulk_create over a {small}-row one, same round",
    )
    print(
        f"\n{small}-row bulk_create vs untracked of the same size: "
        + ", ".join(
            f"{n} {ratio_text(ratios(times, f'{n}_{small}', f'untracked_{small}'))}"
            for n in ("tracked", "row")
        )
    )
    return result


# ---------------------------------------------------------------------------------------
# update, update-trigger-time, update-plan-cache, update-memory


def check_update_events(rows: int) -> None:
    """The tracked update writes one event per row, all with the statement's context."""
    reset({TrackedOrder: rows})
    with bulk_context():
        update_all(TrackedOrder)
    count, contexts = execute(
        f"SELECT count(*), count(DISTINCT {q(audit_sql.CONTEXT)}) "
        f"FROM {event_table(TrackedOrder)} WHERE {q(audit_sql.CONTEXT)} IS NOT NULL"
    )[0]
    if (count, contexts) != (rows, 1):
        raise AssertionError(f"tracked: {count} events, {contexts} contexts after update")


def update(sizes: dict) -> dict:
    rows = sizes["rows"]

    def run(model: Any) -> None:
        with bulk_context():
            update_all(model)

    def floor(model: Any) -> None:
        with bulk_context(), transaction.atomic():
            update_all(model)
            execute(floor_insert_sql(model._meta.db_table, "update"))

    def floor_followed(model: Any) -> None:
        with bulk_context(), transaction.atomic():
            update_all(model)
            execute(floor_insert_sql(model._meta.db_table, "update", FLOOR_FOLLOWED_EVENTS))

    variants: list[Variant] = [
        ("untracked", bulk_setup(PlainOrder, rows), run),
        ("tracked", bulk_setup(TrackedOrder, rows), run),
        ("row", bulk_setup(RowOrder, rows), run),
        ("followed", bulk_setup(FollowedOrder, rows), run),
        ("floor", bulk_setup(PlainOrder, rows), floor),
        ("floor_followed", bulk_setup(PlainOrder, rows), floor_followed),
    ]
    rounds = run_rounds("update", variants, sizes["update_rounds"])
    check_update_events(min(rows, 2_000))
    return RatioTable(
        f"update: QuerySet.update(quantity=F('quantity') + 1, is_paid=True) of {rows} rows in "
        f"a context, fresh session ({sizes['update_rounds']} rounds)",
        rounds,
        base="untracked",
        units=dict.fromkeys(rounds.times, rows),
        unit="row",
        labels={
            "tracked": TRACKED,
            "row": ROW,
            "followed": FOLLOWED,
            "floor": "floor: UPDATE + INSERT..SELECT in one transaction",
            "floor_followed": "floor of the followed table: the same, the follow index too",
        },
        targets={"tracked": "<= 1.15x of floor", "followed": "<= 1.15x of floor"},
        also_against="floor",
        also_for=("tracked", "row", "followed"),
    ).print()


def explain_update(model: Any) -> tuple[float, float]:
    """(ms inside the audit triggers, ms of the statement) from EXPLAIN ANALYZE."""
    table = model._meta.db_table
    with bulk_context():
        plan = [
            line
            for (line,) in execute(
                f"EXPLAIN (ANALYZE) UPDATE {table} SET quantity = quantity + 1, is_paid = TRUE"
            )
        ]
    trigger = sum(
        float(line.split("time=")[1].split()[0])
        for line in plan
        if line.startswith("Trigger ") and "audit" in line
    )
    total = float(
        next(line for line in plan if line.startswith("Execution Time")).split(":")[1].split()[0]
    )
    return trigger, total


def update_trigger_time(sizes: dict) -> dict:
    """The UPDATE trigger's own time, from EXPLAIN ANALYZE of the same statement.

    ``EXPLAIN ANALYZE`` reports the time spent in each AFTER trigger separately from the
    statement's execution time. Their ratio within one statement does not drift with
    the machine's load the way two separately timed statements do.
    """
    rows, rounds = sizes["rows"], sizes["update_rounds"]
    variants = [
        ("tracked", TrackedOrder, None),
        ("tracked_wm", TrackedOrder, BIG_WORK_MEM),
        ("row", RowOrder, None),
    ]
    results: dict[str, dict[str, Any]] = {
        name: {"trigger_ms": [], "total_ms": []} for name, _, _ in variants
    }
    for r in range(rounds):
        for name, model, work_mem in rotated(variants, r):
            bulk_setup(model, rows, work_mem)()
            trigger, total = explain_update(model)
            results[name]["trigger_ms"].append(trigger)
            results[name]["total_ms"].append(total)
        log(
            f"update-trigger-time round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {results[n]['trigger_ms'][-1]:.0f}ms" for n, _, _ in variants)
        )
    labels = {
        "tracked": f"{TRACKED} trigger",
        "tracked_wm": f"{TRACKED} trigger, session work_mem={BIG_WORK_MEM}",
        "row": f"row level (sum over {rows} calls)",
    }
    table = []
    for name, _, _ in variants:
        trig, total = results[name]["trigger_ms"], results[name]["total_ms"]
        inside = [t / (t - g) for g, t in zip(trig, total, strict=True)]
        results[name]["ratio_median"] = statistics.median(inside)
        table.append(
            [
                labels[name],
                f"{statistics.median(trig):.0f} ({min(trig):.0f}-{max(trig):.0f})",
                f"{statistics.median(total):.0f}",
                f"{statistics.median(g / t for g, t in zip(trig, total, strict=True)):.0%}",
                ratio_text(inside),
            ]
        )
    print_table(
        [
            "variant",
            "trigger ms (median)",
            "statement ms (median)",
            "trigger share",
            "in-statement ratio total / (total - trigger)",
        ],
        table,
        f"update-trigger-time: time inside the UPDATE trigger, EXPLAIN ANALYZE of a {rows}-row "
        f"QuerySet.update()-equivalent in a context ({rounds} rounds)",
    )
    return results


def update_plan_cache(sizes: dict) -> dict:
    """A plan cached by a 1-row UPDATE, reused by a big one in the same session."""

    def measure_update(model: Any, rows: int, poison: bool) -> tuple[float, float | None]:
        reset({model: rows})
        if poison:  # what a single save() earlier in the same session does
            with bulk_context():
                model.objects.filter(pk=rows).update(quantity=F("quantity") + 1, is_paid=True)
        with bulk_context():
            seconds = wall_time(lambda: update_all(model))
        return seconds, machine.backend_peak_mib()

    small, large = sizes["plan_sizes"]
    results: dict[str, dict] = {}
    base: dict[int, float] = {}
    rows_out = []
    for rows in (small, large, sizes["rows"]):
        if rows not in base:
            base[rows] = measure_update(PlainOrder, rows, poison=False)[0]
        fresh, fresh_rss = measure_update(TrackedOrder, rows, poison=False)
        poisoned, poisoned_rss = measure_update(TrackedOrder, rows, poison=True)
        results[f"tracked_{rows}"] = {
            "rows": rows,
            "untracked_s": base[rows],
            "fresh_s": fresh,
            "poisoned_s": poisoned,
            "fresh_peak_mib": fresh_rss,
            "poisoned_peak_mib": poisoned_rss,
        }
        log(f"update-plan-cache {rows}: fresh {fresh:.3f}s, after 1-row update {poisoned:.3f}s")
        rows_out.append(
            [
                f"{TRACKED} trigger",
                rows,
                f"{base[rows]:.3f}",
                f"{fresh:.3f}",
                f"{poisoned:.3f}",
                f"{poisoned / fresh:.1f}x",
                f"{fresh_rss or 0:.0f} / {poisoned_rss or 0:.0f}",
            ]
        )
        if poisoned > 5 * fresh:  # quadratic: a bigger size would take far too long
            log(f"update-plan-cache: skipping larger sizes, {poisoned / fresh:.0f}x at {rows}")
            break
    headers = ["variant", "rows", "untracked s", "fresh plan s", "after 1-row UPDATE s"]
    headers += ["slowdown", "backend peak RSS MiB (fresh / after)"]
    print_table(
        headers,
        rows_out,
        "update-plan-cache: a big UPDATE after a 1-row UPDATE earlier in the same session",
    )
    return results


def update_memory(sizes: dict) -> dict:
    """Time and backend memory of one big UPDATE, fresh sessions.

    Peak RSS includes the shared buffers the backend touched, so compare variants, not
    absolute values.
    """
    rows = sizes["mem_rows"]
    variants = [
        ("untracked", PlainOrder, False, "untracked"),
        ("tracked", TrackedOrder, False, f"{TRACKED} trigger"),
        ("tracked_1row", TrackedOrder, True, f"{TRACKED}, after a 1-row UPDATE in the session"),
    ]
    results = {}
    for name, model, poison, _ in variants:
        reset({model: rows})
        with bulk_context():
            if poison:  # the plan is cached for a 1-row transition table
                model.objects.filter(pk=rows).update(quantity=F("quantity") + 1)
            seconds = wall_time(lambda m=model: update_all(m))
        results[name] = {"s": seconds, "peak_mib": machine.backend_peak_mib() or 0.0}
        log(f"update-memory {name}: {seconds:.1f}s, peak {results[name]['peak_mib']:.0f} MiB")
    base = results["untracked"]
    print_table(
        ["variant", "s", "ratio vs untracked", "backend peak RSS MiB", "minus untracked's"],
        [
            [
                label,
                f"{results[name]['s']:.2f}",
                f"{results[name]['s'] / base['s']:.2f}x",
                f"{results[name]['peak_mib']:.0f}",
                f"{results[name]['peak_mib'] - base['peak_mib']:+.0f}",
            ]
            for name, _, _, label in variants
        ],
        f"update-memory: one UPDATE of {rows} rows in a context: time and backend memory",
    )
    return results


# ---------------------------------------------------------------------------------------
# delete


def delete_statements() -> dict[str, list[str]]:
    """The SQL QuerySet.delete() sends per model (a fast delete: no row fetch, no signals)."""
    statements = {}
    for model in (PlainOrder, TrackedOrder, RowOrder):
        reset({model: 10})
        with CaptureQueriesContext(connection) as captured:
            model.objects.all().delete()
        statements[model.__name__] = [s["sql"][:200] for s in captured.captured_queries]
    return statements


def delete(sizes: dict) -> dict:
    rows = sizes["rows"]

    def run(model: Any) -> None:
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

    statements = delete_statements()
    variants: list[Variant] = [
        ("untracked", bulk_setup(PlainOrder, rows), run),
        ("tracked", bulk_setup(TrackedOrder, rows), run),
        ("row", bulk_setup(RowOrder, rows), run),
        ("followed", bulk_setup(FollowedOrder, rows), run),
        ("floor", bulk_setup(PlainOrder, rows), floor),
        ("floor_cte", bulk_setup(PlainOrder, rows), floor_cte),
        ("tracked_wm", bulk_setup(TrackedOrder, rows, BIG_WORK_MEM), run),
    ]
    rounds = run_rounds("delete", variants, sizes["delete_rounds"])
    table = RatioTable(
        f"delete: QuerySet.delete() of {rows} rows in a context ({sizes['delete_rounds']} rounds)",
        rounds,
        base="untracked",
        units=dict.fromkeys(rounds.times, rows),
        unit="row",
        labels={
            "tracked": TRACKED,
            "row": ROW,
            "followed": FOLLOWED,
            "floor": "floor: INSERT..SELECT + DELETE in one transaction",
            "floor_cte": "floor, one statement: WITH d AS (DELETE .. RETURNING *) INSERT",
            "tracked_wm": f"{TRACKED}, session work_mem={BIG_WORK_MEM}",
        },
        targets={"tracked": "<= 1.3x of floor", "followed": "<= 1.3x of floor"},
        also_against="floor",
        also_for=("tracked", "row", "followed", "floor_cte", "tracked_wm"),
    ).print()
    print("\nSQL sent by QuerySet.delete():")
    for name, sqls in statements.items():
        print(f"  {name}: {sqls}")
    table["statements"] = statements
    return table


# ---------------------------------------------------------------------------------------
# Command line


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    run: Callable[[dict], Any]
    default: bool = True  # part of a run without --only


SCENARIOS = (
    Scenario(
        "single-save",
        "5,000 save() calls in autocommit, a request context each; with the floor",
        single_save,
    ),
    Scenario(
        "bulk-create",
        "bulk_create of 100k rows in one transaction",
        bulk_create,
    ),
    Scenario(
        "per-row-cost",
        "us/row of a 100k-row over a 10k-row bulk_create (bulk-create's rounds)",
        per_row_cost,
    ),
    Scenario("update", "QuerySet.update() of 100k rows in a context; with the floor", update),
    Scenario(
        "update-trigger-time",
        "time inside the UPDATE trigger, EXPLAIN ANALYZE of a 100k-row update",
        update_trigger_time,
        default=False,
    ),
    Scenario(
        "update-memory",
        "time and backend memory of a 1M-row UPDATE, also after a 1-row one",
        update_memory,
        default=False,
    ),
    Scenario(
        "update-plan-cache",
        "an UPDATE of 5k, 20k, 100k rows after a 1-row UPDATE in the same session",
        update_plan_cache,
    ),
    Scenario("delete", "QuerySet.delete() of 100k rows in a context; with two floors", delete),
    Scenario(
        "disk",
        "event and context table size per 1M events written through the triggers",
        tracking_disk.disk,
    ),
)
BY_NAME = {s.name: s for s in SCENARIOS}


def parse_args() -> argparse.Namespace:
    width = max(len(s.name) for s in SCENARIOS)
    lines = [
        f"  {s.name.ljust(width)}  {s.summary}{'' if s.default else ' (extra)'}" for s in SCENARIOS
    ]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="scenarios (sizes of the full run; --quick shrinks them; extra ones run only "
        "when named with --only):\n" + "\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(BY_NAME),
        metavar="NAME",
        help="run these scenarios only, in the order listed below",
    )
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--rounds", type=int, help="override every scenario's round count")
    parser.add_argument(
        "--partition",
        choices=("day", "week", "month"),
        help="partition the event tables (and the floors' copies) by this interval",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    if args.rounds:
        sizes.update({k: args.rounds for k in sizes if k.endswith("_rounds")})
    wanted = set(args.only) if args.only else {s.name for s in SCENARIOS if s.default}
    if "update-memory" in wanted:
        sizes["source_rows"] = sizes["mem_rows"]
    started = time.perf_counter()
    create_schema(sizes, partition=args.partition)
    machine.find_postmaster()
    facts = describe_environment()
    facts["update_trigger"] = describe_update_trigger()
    facts["event_tables_partitioned_by"] = args.partition
    title = "audit_app capture benchmark" + (" (--quick)" if args.quick else "")
    if args.partition:
        title += f", event tables partitioned by {args.partition}"
    print_environment(title, facts)
    print(f"tracked model's UPDATE trigger: {facts['update_trigger']}")
    results: dict[str, Any] = {"sizes": sizes, "server": facts}
    for scenario in SCENARIOS:
        if scenario.name in wanted:
            results[scenario.name] = scenario.run(sizes)
    elapsed = time.perf_counter() - started
    results["elapsed_s"] = elapsed
    results.update(print_load_summary(elapsed))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
