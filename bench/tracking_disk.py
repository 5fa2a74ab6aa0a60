"""The ``disk`` scenario of ``bench/tracking.py``: storage per 1M events.

Events are written through the triggers, the way an application writes them: orders
imported in batches (one context per batch), then changed by requests that each update
k random orders in their own context. An upper bound writes one context per event.
Sizes are read after VACUUM and scaled to 1M events. Import after ``django.setup()``.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from django.db import transaction
from django.db.models import F

import audit_app
from audit_app import sql as audit_sql
from bench.benchapp.models import TrackedOrder
from bench.harness import execute, log, print_table, q
from bench.tracking_data import event_table, metadata, reset, source_objects

MiB = 1024 * 1024
# k rows per request, and the share of requests that change k rows
REQUEST_MIX = [(1, 0.6), (5, 0.3), (50, 0.1)]
# Indexes that audit_app does not create, maintained during the same fills so that
# their size can be compared with the ones it does create.
SHADOW_INDEXES = {
    "bench_alt_obj_only": "btree (id)",
    "bench_alt_ts_only": "btree (audit_created_at)",
    "bench_alt_ts_brin": "brin (audit_created_at)",
}


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


def import_orders(orders: int) -> None:
    """``orders`` inserts by bulk_create in batches of 1,000, one context per batch."""
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


def fill(sizes: dict) -> dict[str, Any]:
    """Both fills; the sizes of the event and context tables after each."""
    orders, events = sizes["disk_orders"], sizes["disk_events"]
    events_table = event_table(TrackedOrder)
    for name, definition in SHADOW_INDEXES.items():
        execute(f"CREATE INDEX {name} ON {events_table} USING {definition}")
    result: dict[str, Any] = {"mix": REQUEST_MIX}

    # Realistic: imported in batches, then changed by requests that share a context.
    reset()
    log(f"disk: {orders} orders imported in batches of 1000, one context per batch")
    import_orders(orders)
    log(f"disk: {events - orders} update events from requests (k per request: {REQUEST_MIX})")
    start = time.perf_counter()
    requests = fill_requests(events - orders, orders, REQUEST_MIX, seed=6)
    log(f"disk: {requests} requests in {time.perf_counter() - start:.0f}s")
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
    log(f"disk: upper bound, {upper_events} single-row updates, one context each")
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
    return result


def per_1m(run: dict, value: float) -> float:
    """MiB per 1M events of ``value`` bytes measured in ``run``."""
    return value * 1_000_000 / run["events"]["rows"] / MiB


def print_disk(sizes: dict, result: dict) -> None:
    realistic, upper = result["realistic"], result["upper"]
    orders, events = sizes["disk_orders"], sizes["disk_events"]
    mean_k = sum(k * w for k, w in REQUEST_MIX)
    runs = (realistic, upper)
    rows = []
    for label, key in (("event heap", "heap"), ("event TOAST", "toast")):
        rows.append([label, *(f"{per_1m(r, r['events'][key]):.1f}" for r in runs)])
    for name, index in realistic["events"]["indexes"].items():
        label = f"index {name} `{index['def'].split(' USING ')[1]}`"
        rows.append(
            [label, *(f"{per_1m(r, r['events']['indexes'][name]['bytes']):.1f}" for r in runs)]
        )
    for run in runs:
        ev = per_1m(run, run["events"]["total"])
        cx = per_1m(run, run["context"]["total"])
        run["per_1m"] = {"events_mib": ev, "context_mib": cx, "total_mib": ev + cx}
    for label, key in (
        ("event table total", "events_mib"),
        ("audit_app_context total (heap + indexes)", "context_mib"),
        ("**total incl. context** (target <= 400)", "total_mib"),
    ):
        rows.append([label, *(f"{r['per_1m'][key]:.1f}" for r in runs)])
    print(f"\n## disk: per 1M events of {TrackedOrder._meta.label} (after VACUUM)\n")
    print(
        f"Realistic fill: {orders} inserts in {orders // 1000} import contexts, then "
        f"{events - orders} update events from {realistic['requests']} requests (k rows per "
        f"request: {REQUEST_MIX}, mean {mean_k:.1f}); {realistic['context']['rows']} context "
        f"rows, {realistic['events']['rows'] / max(realistic['context']['rows'], 1):.2f} "
        f"events per context. Upper bound: {sizes['disk_upper_events']} single-row updates, "
        "one context each, scaled.\n"
    )
    print_table(
        ["part", "realistic MiB per 1M events", "upper bound (1 context/event) MiB per 1M"], rows
    )
    print(
        "\nIndexes audit_app does not create, maintained during the same fills "
        "(not counted above):\n"
    )
    print_table(
        ["index", "realistic MiB per 1M", "upper bound MiB per 1M"],
        [
            [
                f"{name} `{definition}`",
                *(f"{per_1m(r, r['events']['shadow'][name]):.1f}" for r in runs),
            ]
            for name, definition in SHADOW_INDEXES.items()
        ],
    )
    ctx = realistic["context"]
    ctx_rows = max(ctx["rows"], 1)
    ev, live = realistic["events"], realistic["live"]
    print(
        f"\nPer row: event {ev['total'] / ev['rows']:.0f} B "
        f"(heap {ev['heap'] / ev['rows']:.0f} B), "
        f"context {ctx['total'] / ctx_rows:.0f} B (heap {ctx['heap'] / ctx_rows:.0f} B; indexes "
        + ", ".join(f"{n} {i['bytes'] / ctx_rows:.0f} B" for n, i in ctx["indexes"].items())
        + f"); live order {live['total'] / live['rows']:.0f} B "
        f"(heap {live['heap'] / live['rows']:.0f} B)."
    )


def disk(sizes: dict) -> dict:
    result = fill(sizes)
    print_disk(sizes, result)
    reset()
    return result
