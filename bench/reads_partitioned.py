"""Reads over monthly partitions: do history pages stay O(page) at 50M events?

Run from the repository root::

    .venv/bin/python bench/reads_partitioned.py                  # 10k, then 50M events
    .venv/bin/python bench/reads_partitioned.py --events 2000000 # 10k, then 2M events
    .venv/bin/python bench/reads_partitioned.py --quick          # tiny sizes, a smoke run

The measurements are ``bench/reads.py``'s (history reads, admin pages, the same
cases, medians of warm runs, EXPLAIN of each case's slowest statement), on a database
whose event tables are partitioned by month:

- **Partitions.** Every event table is declared ``partition="month"``
  (``AUDIT_PARTITION``, see ``bench/reads_settings.py``) and the ten seeded ones are
  partitioned before seeding, as ``partitioning.convert`` leaves a table converted 24
  months ago: a partition of everything before the first month (empty here), one per
  month up to two months ahead (``ensure_partitions``), and the default partition.
- **Events** are spread evenly over the 24 months that end now, by
  ``bench/reads_seed.py``'s seeder (the same one ``bench/reads.py`` uses, over two
  years instead of one): the small phase (10k events) is the big one when it was
  young, then the same database grows to ``--events``.
- **Fast path of the seeding.** One set-based ``INSERT ... SELECT ... CROSS JOIN
  generate_series(1, k) ... ORDER BY time`` per event table, into the partitioned
  parent (PostgreSQL routes each row to its month), with every index in place; live
  rows by ``bulk_create``, one context row per ~5 events by one ``INSERT ... SELECT``.
  Routing through the parent keeps the seeder shared with ``bench/reads.py``; it costs
  little next to the index maintenance.
- **Export**: the time to the first 2,000 rows of ``export.rows()`` over all
  ``Order`` history, newest first (what a paged export view waits for), and the stream
  rate of ``stream_csv`` (with diffs) over the newest ``--export-events`` ``Order``
  events, as milliseconds per 1,000 rows; both in-process, warm.
- **Disk** per 1M events: each event table's heap and each of its indexes summed over
  its partitions, the context table, and the partition count.

Results are discussed in docs/performance.md ("50M events over 24 monthly partitions").
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
# Read by bench/reads_settings.py, before the models are declared.
os.environ["BENCH_READS_PARTITION"] = "month"

from bench import reads  # noqa: E402 (sets Django up)

# isort: split
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from audit_app import export, partitioning  # noqa: E402
from audit_app import partition_sql as psql  # noqa: E402
from audit_app.models import AuditEvent  # noqa: E402
from bench import machine  # noqa: E402
from bench.harness import (  # noqa: E402
    describe_environment,
    execute,
    log,
    print_environment,
    print_table,
    q,
)
from bench.reads_seed import MIX, Seeder  # noqa: E402
from shop.models import Order  # noqa: E402

MONTHS = 24
FULL = {**reads.FULL, "events": 50_000_000, "export_events": 100_000}
QUICK = {**reads.QUICK, "export_events": 2_000}
EXPORT_FIRST_PAGE = "export first page (rows(), 2,000 rows)"
EXPORT_RATE = "export stream_csv, ms per 1,000 rows"
MiB = 1024 * 1024


def months_back(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` months earlier (the 28th at most)."""
    month = moment.year * 12 + moment.month - 1 - months
    return moment.replace(year=month // 12, month=month % 12 + 1, day=min(moment.day, 28))


class PartitionedSeeder(Seeder):
    """``bench/reads_seed.py``'s seeder over ``MONTHS`` months instead of a year."""

    def __init__(self, final_events: int, heavy_final: int) -> None:
        super().__init__(final_events, heavy_final)
        self.start = self.clock = months_back(self.end, MONTHS)


# ---------------------------------------------------------------------------------------
# Partitions


def event_tables() -> list[str]:
    return [model.audit_event_model.audit_spec.event_table for model, _, _ in MIX]


def partition_by_month(event_model: Any, first: datetime, now: datetime) -> None:
    """Make the empty event table what a conversion ``MONTHS`` months ago left: a
    partition of everything before ``first``, one per month to two months ahead, and
    the default partition."""
    table = event_model.audit_spec.event_table
    existing = partitioning.partitions(table)
    if existing:
        # Partitioned by its migration today, its partition of everything before next
        # month would take all the history: empty here, so made again.
        for part in existing:
            execute(f"DROP TABLE {q(part.name)}")
        past = psql.past_partition_name(table, first)
        guarded = event_model.audit_append_only
        statements = [
            f"CREATE TABLE {q(past)} PARTITION OF {q(table)} {psql.range_clause(None, first)}",
            *([psql.guard_sql(past)] if guarded else []),
            *psql.default_partition_sql(table, guarded=guarded),
        ]
        for statement in statements:
            execute(statement)
    else:
        partitioning.convert(table, "month", concurrently=False, now=first - timedelta(days=1))
    months = (now.year - first.year) * 12 + now.month - first.month
    partitioning.ensure_partitions(table, now=first, ahead=months + 2)


def partition_counts() -> dict[str, int]:
    return {table: len(partitioning.partitions(table)) for table in event_tables()}


# ---------------------------------------------------------------------------------------
# Export (in-process)


def export_reads(seeder: Seeder, sizes: dict, cases: reads.Cases) -> None:
    """The first page of an export of all Order history, and the stream rate."""
    everything = AuditEvent.objects.across(Order)

    def first_page() -> None:
        # In a transaction: Django's server-side cursor is WITH HOLD in autocommit,
        # which makes PostgreSQL compute every row before the first is sent.
        with transaction.atomic():
            rows = export.rows(everything)
            got = len(list(itertools.islice(rows, export.CHUNK_ROWS)))
            rows.close()
        if got == 0:
            raise RuntimeError("the export returned no rows")

    times = reads.warm_times(first_page, sizes["runs"])
    cases.results[EXPORT_FIRST_PAGE] = {"median_ms": reads.median(times), "queries": 1}
    # The plan of the first page only: EXPLAIN ANALYZE would compute every row.
    statement, params = export.rows_sql(everything)
    cases.explains[EXPORT_FIRST_PAGE] = explain_statement(
        f"{statement} LIMIT {export.CHUNK_ROWS}", params
    )
    log(f"  {cases.phase} export first page: {reads.median(times):.2f} ms")
    n = min(sizes["export_events"], execute("SELECT count(*) FROM shop_orderevent")[0][0])
    since = execute(
        "SELECT audit_created_at FROM shop_orderevent "
        "ORDER BY audit_created_at DESC, audit_id DESC OFFSET %s LIMIT 1",
        [n - 1],
    )[0][0]
    newest = everything.filter(created_at__gte=since)
    lines = 0

    def stream() -> None:
        nonlocal lines
        lines = sum(chunk.count(b"\n") for chunk in export.stream_csv(newest)) - 1

    times = reads.warm_times(stream, max(1, sizes["runs"] // 2), warmup=1)
    per_1k = [t / (lines / 1000) for t in times]
    cases.results[EXPORT_RATE] = {
        "median_ms": reads.median(per_1k),
        "events": lines,
        "rows_per_s": lines / (reads.median(times) / 1000),
        "queries": 1,
    }
    statement, params = export.rows_sql(newest)
    cases.explains[EXPORT_RATE] = explain_statement(statement, params)
    log(f"  {cases.phase} export: {lines:,} rows, {reads.median(per_1k):.2f} ms per 1,000")


def explain_statement(statement: str, params: Any) -> dict[str, Any]:
    with transaction.atomic():
        plan = execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
    return {
        "queries": 1,
        "statements": [],
        "slowest_ms": 0.0,
        "sql": statement,
        "plan": "\n".join(r[0] for r in plan),
    }


# ---------------------------------------------------------------------------------------
# Disk


def tree_size(relation: str, function: str) -> int:
    """``function`` (pg_relation_size, ...) summed over ``relation``'s partition tree."""
    return execute(
        f"SELECT coalesce(sum({function}(relid)), 0)::bigint "
        "FROM pg_partition_tree(%s::regclass) WHERE isleaf",
        [q(relation)],
    )[0][0]


def measure_disk() -> dict[str, Any]:
    """Heap, each index and total of every event table over its partitions."""
    tables = []
    for table in event_tables():
        rows = execute(f"SELECT count(*) FROM {q(table)}")[0][0]
        indexes = {
            name: tree_size(name, "pg_relation_size")
            for (name,) in execute(
                "SELECT indexrelid::regclass::text FROM pg_index "
                "WHERE indrelid = %s::regclass ORDER BY 1",
                [q(table)],
            )
        }
        tables.append(
            {
                "table": table,
                "rows": rows,
                "heap": tree_size(table, "pg_relation_size"),
                "toast": tree_size(table, "pg_total_relation_size")
                - tree_size(table, "pg_relation_size")
                - sum(indexes.values()),
                "indexes": indexes,
                "total": tree_size(table, "pg_total_relation_size"),
                "partitions": len(partitioning.partitions(table)),
            }
        )
    ctx_rows, ctx_total, ctx_indexes = execute(
        "SELECT count(*), pg_total_relation_size('audit_app_context'), "
        "pg_indexes_size('audit_app_context') FROM audit_app_context"
    )[0]
    return {
        "tables": tables,
        "events": sum(t["rows"] for t in tables),
        "context": {"rows": ctx_rows, "total": ctx_total, "indexes": ctx_indexes},
    }


def print_disk(disk: dict[str, Any]) -> None:
    rows = []
    n = disk["events"] / 1e6

    def per_million(size: int, events: int) -> str:
        return reads.fmt(size / MiB / (events / 1e6), 1) if events else "-"

    for t in disk["tables"]:
        rows.append([t["table"], f"{t['rows']:,}", str(t["partitions"]), "heap",
                     per_million(t["heap"], t["rows"])])  # fmt: skip
        rows.append(["", "", "", "TOAST", per_million(t["toast"], t["rows"])])
        for name, size in t["indexes"].items():
            rows.append(["", "", "", name, per_million(size, t["rows"])])
        rows.append(["", "", "", "total", per_million(t["total"], t["rows"])])
    events_total = sum(t["total"] for t in disk["tables"])
    ctx = disk["context"]
    rows.append(["all event tables", f"{disk['events']:,}", "", "total",
                 reads.fmt(events_total / MiB / n, 1)])  # fmt: skip
    rows.append(["audit_app_context", f"{ctx['rows']:,}", "", "total",
                 reads.fmt(ctx["total"] / MiB / n, 1)])  # fmt: skip
    print_table(
        ["table", "rows", "partitions", "part", "MiB per 1M events"],
        rows,
        f"disk: at {disk['events']:,} events, summed over partitions",
    )


# ---------------------------------------------------------------------------------------
# Command line

SCENARIOS = {
    "history-reads": reads.history_reads,
    "admin-pages": reads.admin_pages,
    "export": export_reads,
    "changeset-timeline": reads.changeset_timeline,
}
DEFAULT = ("history-reads", "admin-pages", "export", "disk")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--events", type=int, help="events of the big phase (default 50M)")
    parser.add_argument("--small", type=int, help="events of the small phase (default 10k)")
    parser.add_argument("--export-events", type=int, help="Order events streamed (100k)")
    parser.add_argument(
        "--only", nargs="+", choices=[*SCENARIOS, "disk"], metavar="NAME",
        help=f"scenarios to run (default: {' '.join(DEFAULT)})",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--explain", type=Path, help="EXPLAIN output (default: a temp file)")
    return parser.parse_args()


def report(data: dict[str, Any], sizes: dict) -> None:
    phases = data["phases"]
    for phase in ("small", "big"):
        counts, seed = phases[phase]["counts"], phases[phase]["seed"]
        print(
            f"\nseeding to {counts['events']:,} events ({counts['contexts']:,} contexts): "
            + ", ".join(f"{k} {reads.fmt(v, 1)}" for k, v in seed.items())
        )
    print(f"\npartitions per event table: {json.dumps(data['partitions'])}")
    print(
        f"Median ms of {sizes['runs']} warm runs (admin pages: {sizes['admin_runs']}); "
        f"small = {phases['small']['counts']['events']:,} events, "
        f"big = {phases['big']['counts']['events']:,}"
    )
    for key in SCENARIOS:
        if key in phases["big"]:
            reads.print_growth(f"{key}: small and big database", key, data)
    print("\ncounts (small):", json.dumps(phases["small"]["counts"]))
    print("counts (big):", json.dumps(phases["big"]["counts"]))
    if "disk" in data:
        print_disk(data["disk"])


def main() -> None:
    args = parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("events", "small", "export_events"):
        if getattr(args, key):
            sizes[key] = getattr(args, key)
    wanted = set(args.only or DEFAULT)
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    machine.find_postmaster()
    seeder = PartitionedSeeder(sizes["events"], sizes["heavy"])
    first = psql.floor(seeder.start, "month")
    t0 = time.perf_counter()
    for model, _, _ in MIX:
        partition_by_month(model.audit_event_model, first, seeder.end)
    log(f"partitioned {len(event_tables())} event tables in {time.perf_counter() - t0:.1f} s")
    facts = describe_environment()
    print_environment("audit_app reads benchmark, monthly partitions", facts)
    data: dict[str, Any] = {"sizes": sizes, "server": facts, "phases": {}}
    data["partitions"] = partition_counts()
    scenarios = {name: fn for name, fn in SCENARIOS.items() if name in wanted}
    reads.run_phases(sizes, wanted, data, seeder, scenarios, measure_disk)
    data["benchmark_s"] = time.perf_counter() - started
    reads.finish(args, data, sizes, report, prefix="bench-parts-")


if __name__ == "__main__":
    main()
