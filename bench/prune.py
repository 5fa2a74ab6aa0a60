"""What does a prune cost the writers of the table? By partition and by batch delete.

Run from the repository root::

    .venv/bin/python bench/prune.py                     # 10M events per table
    .venv/bin/python bench/prune.py --events 1000000    # smaller

Seeds ``--events`` events in the example shop's order event table, partitioned by
month, and as many in a plain event table (``trackapp.Widget``), spread evenly over
13 months before now in id order, one context row per 20 events (the fast path:
``INSERT ... SELECT generate_series`` straight into the tables). Then, per table, a
writer thread saves one tracked row at a time in a request context of its own
(continuously, a few milliseconds apart); its save latency is measured for a while
before the prune and during ``prune --before`` a date that removes about 12/13 of the
events (whole partitions dropped, or batches deleted). Finally the context rows left
without events are deleted. Prints wall times, the writer's p50/p99/max before and
during, and its errors. Results are discussed in docs/performance.md ("Prune").
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "example_project"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.reads_settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.utils import timezone  # noqa: E402

import audit_app  # noqa: E402
from audit_app import partition_sql as psql  # noqa: E402
from audit_app import partitioning  # noqa: E402
from audit_app.retention import prune  # noqa: E402
from bench.harness import describe_environment, execute, log, print_environment, q  # noqa: E402
from shop.models import Customer, Order  # noqa: E402
from tests.trackapp.models import Widget  # noqa: E402

MONTHS = 13
EVENTS_PER_CONTEXT = 20
BASELINE_SECONDS = 5.0
PAUSE_SECONDS = 0.005  # between two saves of the writer


def month_start(moment: datetime.datetime, back: int) -> datetime.datetime:
    start = psql.floor(moment, "month")
    for _ in range(back):
        start = psql.floor(start - datetime.timedelta(days=1), "month")
    return start


def monthly_partitions(table: str, now: datetime.datetime) -> None:
    """One partition per month from MONTHS ago to two months ahead (the migration made
    the table with one partition for all of its past: set aside, it is empty)."""
    for partition in partitioning.partitions(table):
        if partition.lower is None and not partition.default:
            partitioning.run_with_short_locks(
                "default",
                [f"ALTER TABLE {q(table)} DETACH PARTITION {q(partition.name)}",
                 f"DROP TABLE {q(partition.name)}"],
            )  # fmt: skip
    lower = month_start(now, MONTHS)
    existing = {p.lower for p in partitioning.partitions(table)}
    while lower < now:
        upper = psql.step(lower, "month")
        if lower not in existing:
            name = psql.partition_name(table, lower)
            partitioning.run_with_short_locks(
                "default", psql.new_partition_sql(table, name, lower, upper, guarded=True)
            )
        lower = upper
    partitioning.ensure_partitions(table)


def _fill(column: str, data_type: str) -> str:
    """A value for a NOT NULL column without a default, by type."""
    if data_type in ("integer", "bigint", "smallint", "numeric"):
        return "g"
    if "timestamp" in data_type:
        return "ts"
    if data_type == "jsonb":
        return "'{}'::jsonb"
    if data_type == "boolean":
        return "false"
    return "'seed'"


def seed(table: str, events: int, start: datetime.datetime, end: datetime.datetime) -> float:
    """``events`` events in ``table`` evenly from ``start`` to ``end``, ids in time
    order, with their context rows; return the seconds it took."""
    began = time.perf_counter()
    span = (end - start).total_seconds()
    contexts = (events + EVENTS_PER_CONTEXT - 1) // EVENTS_PER_CONTEXT
    first = execute(
        "SELECT coalesce(max(id), 0) + 1 FROM audit_app_context WHERE id < %s", [1 << 62]
    )[0][0]
    execute(
        "INSERT INTO audit_app_context (id, created_at, user_id, metadata) "
        "SELECT %s + c, %s + (c * %s * interval '1 second'), NULL, '{\"seed\": true}' "
        "FROM generate_series(0, %s - 1) AS c",
        [first, start, span * EVENTS_PER_CONTEXT / events, contexts],
    )
    execute(
        "SELECT setval(pg_get_serial_sequence('audit_app_context', 'id'), %s)", [first + contexts]
    )
    columns = execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
        "AND is_nullable = 'NO' AND column_default IS NULL",
        [table],
    )
    values = {name: _fill(name, data_type) for name, data_type in columns if name != "audit_id"}
    values.update(
        audit_created_at="ts",
        audit_label="'update'",
        audit_context_id=f"{first} + (g - 1) / {EVENTS_PER_CONTEXT}",
    )
    if "id" in values:  # the tracked row's key: a thousand objects
        values["id"] = "1 + g %% 1000"
    names = ", ".join(map(q, values))
    execute(
        f"INSERT INTO {q(table)} ({names}) SELECT {', '.join(values.values())} FROM "
        "(SELECT g, %s + ((g - 1) * %s * interval '1 second') AS ts "
        "FROM generate_series(1, %s) AS g) AS s",
        [start, span / events, events],
    )
    execute(f"VACUUM ANALYZE {q(table)}")
    execute("VACUUM ANALYZE audit_app_context")
    return time.perf_counter() - began


class Writer(threading.Thread):
    """Saves one tracked row at a time, each in a request context, until stopped."""

    def __init__(self, save) -> None:
        super().__init__(daemon=True)
        self.save = save
        self.latencies: list[tuple[float, float]] = []  # (when, seconds)
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        number = 0
        try:
            while not self.stop.is_set():
                number += 1
                began = time.perf_counter()
                try:
                    with audit_app.context(user=None, request_id=f"bench-{number}"):
                        self.save(number)
                except Exception as exc:  # every failure is a writer error
                    self.errors.append(repr(exc))
                self.latencies.append((began, time.perf_counter() - began))
                time.sleep(PAUSE_SECONDS)
        finally:
            connections.close_all()

    def between(self, start: float, end: float) -> list[float]:
        return [seconds for when, seconds in self.latencies if start <= when < end]


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    cuts = statistics.quantiles(ordered, n=100) if len(ordered) > 1 else [ordered[0]] * 99
    return {"n": len(ordered), "p50": cuts[49], "p99": cuts[98], "max": ordered[-1]}


def run_prune(label: str, model, cutoff: datetime.datetime, save) -> dict:
    """Writer latency before and during a prune of ``model``'s events before ``cutoff``."""
    writer = Writer(save)
    writer.start()
    time.sleep(BASELINE_SECONDS)
    began = time.perf_counter()
    counts = prune(cutoff, models=[model], log=log)
    ended = time.perf_counter()
    time.sleep(0.5)
    writer.stop.set()
    writer.join(60)
    before = percentiles(writer.between(began - BASELINE_SECONDS, began))
    during = percentiles(writer.between(began, ended))
    result = {
        "label": label,
        "removed": sum(counts.values()),
        "prune_s": ended - began,
        "before": before,
        "during": during,
        "errors": writer.errors,
    }
    log(f"{label}: {result['removed']:,} events removed in {result['prune_s']:.1f} s")
    return result


def report(results: list[dict], contexts: tuple[int, float], sizes: dict) -> None:
    print(f"\nPrune of {sizes['events']:,} events per table (seeded in "
          f"{sizes['seed_s']:.0f} s), date {datetime.date.today()}")  # fmt: skip
    header = "| prune | events removed | wall time | writer saves before / during | p50 before -> during | p99 before -> during | max during | p99 rise | errors |"  # noqa: E501
    print(header)
    print("|" + "---|" * 9)
    for r in results:
        b, d = r["before"], r["during"]
        print(
            f"| {r['label']} | {r['removed']:,} | {r['prune_s']:.1f} s | {b['n']} / {d['n']} "
            f"| {b['p50'] * 1000:.1f} -> {d['p50'] * 1000:.1f} ms "
            f"| {b['p99'] * 1000:.1f} -> {d['p99'] * 1000:.1f} ms | {d['max'] * 1000:.0f} ms "
            f"| {(d['p99'] - b['p99']) * 1000:+.1f} ms | {len(r['errors'])} |"
        )
    print(f"\nContext rows left without events: {contexts[0]:,} deleted in {contexts[1]:.1f} s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events per table")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    call_command("migrate", verbosity=0)
    print_environment("audit_app prune benchmark", describe_environment())
    now = timezone.now()
    start, end = month_start(now, MONTHS), now - datetime.timedelta(days=1)
    cutoff = month_start(now, 1)  # everything but about the last month goes
    orders = Order.audit_event_model._meta.db_table
    monthly_partitions(orders, now)
    sizes = {"events": args.events, "seed_s": 0.0}
    for table in (orders, Widget.audit_event_model._meta.db_table):
        log(f"seeding {args.events:,} events into {table}")
        sizes["seed_s"] += seed(table, args.events, start, end)
    customer = Customer.objects.create(name="bench", email="bench@example.com")
    results = [
        run_prune("by partition (shop.Order, monthly)", Order, cutoff,
                  lambda n: Order.objects.create(customer=customer, notes=str(n))),
        run_prune("batch delete (plain table)", Widget, cutoff,
                  lambda n: Widget.objects.create(name=str(n))),
    ]  # fmt: skip
    began = time.perf_counter()
    counts = prune(cutoff, models=None, log=log)
    contexts = (counts["audit_app.Context"], time.perf_counter() - began)
    report(results, contexts, sizes)


if __name__ == "__main__":
    main()
