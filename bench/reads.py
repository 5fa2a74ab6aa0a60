"""Reads, export and backfill at scale: what do history pages cost at 10k and 10M events?

Run from the repository root::

    .venv/bin/python bench/reads.py                     # 10k, then 10M events
    .venv/bin/python bench/reads.py --events 1000000    # 10k, then 1M events
    .venv/bin/python bench/reads.py --quick             # tiny sizes, a smoke run
    .venv/bin/python bench/reads.py --only export backfill

Method. A private, durable PostgreSQL 16 (``bench/reads_settings.py``) holds the
example shop plus ``tests.trackapp``, seeded by ``bench/reads_seed.py``. The same
seeding code runs twice: first to ``--small`` events (10k), measure; then it grows the
same database to ``--events`` (10M), measure again. After each phase: VACUUM ANALYZE
and CHECKPOINT, untimed.

Every read is timed warm (two untimed runs first), each run a fresh queryset, and
reported as the median; admin pages are rendered in-process by Django's test client.
The export (CSV with and without diffs, JSON Lines) runs in fresh child processes
(peak RSS = VmHWM of that child) next to a plain COPY of the same rows, in rounds
that rotate the order of the modes. For the slowest SQL statement of every case,
EXPLAIN (ANALYZE, BUFFERS) is written to ``--explain``. Results are discussed in
docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "example_project"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.reads_settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.core.signals import request_finished, request_started  # noqa: E402
from django.db import close_old_connections, connection, models  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402

import audit_app  # noqa: E402
from audit_app import export  # noqa: E402
from audit_app.models import AuditEvent  # noqa: E402
from bench import machine  # noqa: E402
from bench.changeset_seed import create_changeset_order  # noqa: E402
from bench.harness import (  # noqa: E402
    describe_environment,
    execute,
    log,
    median,
    other_benchmark_running,
    print_environment,
    print_quiet_summary,
    print_table,
    q,
    rotated,
    warm_times,
)
from bench.reads_seed import MIX, Seeder  # noqa: E402
from shop.models import Customer, DigitalProduct, Order, OrderItem  # noqa: E402
from tests.trackapp.models import Credential, Invoice, Widget  # noqa: E402

FULL = {
    "small": 10_000,
    "events": 10_000_000,
    "runs": 7,
    "admin_runs": 5,
    "export_events": 1_000_000,
    "export_runs": 3,
    "backfill_rows": 1_000_000,
    "backfill_runs": 3,
    "heavy": 100_000,
}
QUICK = {
    "small": 2_000,
    "events": 20_000,
    "runs": 3,
    "admin_runs": 2,
    "export_events": 5_000,
    "export_runs": 1,
    "backfill_rows": 10_000,
    "backfill_runs": 1,
    "heavy": 1_000,
}
HISTORY_MODELS = (Order, Customer, OrderItem, DigitalProduct, Widget, Invoice)
MiB = 1024 * 1024
# Targets (ms unless noted).
TARGET_READ_MS = 25.0
TARGET_PAGE_MS = 250.0
TARGET_GROWTH = 2.0
TARGET_EXPORT_S = 5.0
TARGET_EXPORT_MB = 100.0
TARGET_BACKFILL_S = 60.0
# The export's modes and their labels: a plain COPY of the same rows (the floor),
# then audit_app's.
EXPORT_MODES = {
    "copy": "COPY (SELECT * ...) floor",
    "csv": "stream_csv",
    "csv-nodiff": "stream_csv(diff=False)",
    "jsonl": "stream_jsonl",
}
READ_TARGETS = {
    "newest 50, with diffs": TARGET_READ_MS,
    "object history [:50], all objects": TARGET_READ_MS,
    "by_user frequent [:50]": TARGET_READ_MS,
    "by_user rare [:50]": TARGET_READ_MS,
    "browser unfiltered": TARGET_PAGE_MS,
    "browser ?user= (frequent)": TARGET_PAGE_MS,
    "browser ?user= (rare)": TARGET_PAGE_MS,
    "browser ?model=shop.order": TARGET_PAGE_MS,
    "change-set timeline page (1,000 items, ~10k events)": TARGET_PAGE_MS,
}


# ---------------------------------------------------------------------------------------
# Cases: one timed read, with the plan of its slowest statement


class Recorder:
    """Execute wrapper that remembers every statement, its parameters and its time."""

    def __init__(self) -> None:
        self.statements: list[tuple[float, str, Any]] = []

    def __call__(self, execute_: Callable, sql: str, params: Any, many: bool, context: Any):
        t0 = time.perf_counter()
        try:
            return execute_(sql, params, many, context)
        finally:
            self.statements.append((time.perf_counter() - t0, sql, params))


def explain_slowest(fn: Callable[[], Any]) -> dict[str, Any]:
    """Run ``fn`` once, then EXPLAIN (ANALYZE, BUFFERS) its slowest SELECT."""
    recorder = Recorder()
    with connection.execute_wrapper(recorder):
        fn()
    selects = [
        s for s in recorder.statements if s[1].lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    if not selects:
        return {"queries": len(recorder.statements)}
    seconds, statement, params = max(selects, key=lambda s: s[0])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return {
        "queries": len(recorder.statements),
        "statements": [
            f"{s[0] * 1000:7.2f} ms  {' '.join(s[1].split())[:150]}" for s in recorder.statements
        ],
        "slowest_ms": seconds * 1000,
        "sql": statement,
        "plan": plan,
    }


@dataclass
class Cases:
    """The results and plans of one scenario in one phase."""

    phase: str
    runs: int
    results: dict[str, Any]
    explains: dict[str, Any]

    def time(self, name: str, fn: Callable[[], Any], runs: int | None = None) -> None:
        times = warm_times(fn, runs or self.runs)
        self.results[name] = {
            "median_ms": median(times),
            "min_ms": min(times),
            "max_ms": max(times),
        }
        self.explains[name] = explain_slowest(fn)
        self.results[name]["queries"] = self.explains[name]["queries"]
        queries = self.explains[name]["queries"]
        log(f"  {self.phase} {name}: {median(times):.2f} ms ({queries} queries)")


def pick_objects(seeder: Seeder) -> list[models.Model]:
    """One ordinary object of each history model (the same ones in every phase)."""
    rng = random.Random(7)
    objects = []
    for model in HISTORY_MODELS:
        manager = model._base_manager.order_by("pk")
        if model is Order:
            manager = manager.exclude(pk__in=(seeder.heavy_pk, seeder.dormant_pk))
        count = manager.count()
        objects.append(manager[rng.randrange(count)])
    return objects


def browser_user_param(user: Any) -> str:
    """The value the event browser's ``user`` filter takes: a username or an id."""
    try:
        from audit_admin import browser_filters  # type: ignore[attr-defined]
    except ImportError:
        return user.username
    import django_filters

    for value in vars(browser_filters).values():
        if isinstance(value, type) and issubclass(value, django_filters.FilterSet):
            field = value.base_filters.get("user")
            if isinstance(field, (django_filters.NumberFilter, django_filters.ModelChoiceFilter)):
                return str(user.pk)
    return user.username


# ---------------------------------------------------------------------------------------
# history-reads and admin-pages (once per phase)


def history_reads(seeder: Seeder, sizes: dict, cases: Cases) -> None:
    """The newest events, one object's history, one user's events, the count."""
    runs = sizes["runs"]
    cases.time("newest 50, with diffs", lambda: list(AuditEvent.objects.all()[:50]))
    cases.time("newest 50, without diffs", lambda: list(AuditEvent.objects.without_diffs()[:50]))
    per_object = []
    for obj in pick_objects(seeder):
        name = f"object history [:50] {obj._meta.label}"
        times = warm_times(lambda obj=obj: list(AuditEvent.objects.tracks(obj)[:50]), runs)
        per_object += times
        cases.results[name] = {
            "median_ms": median(times),
            "events": AuditEvent.objects.tracks(obj).without_diffs().count(),
        }
        cases.explains[name] = explain_slowest(
            lambda obj=obj: list(AuditEvent.objects.tracks(obj)[:50])
        )
    cases.results["object history [:50], all objects"] = {
        "median_ms": median(per_object),
        "max_ms": max(per_object),
    }
    log(f"  {cases.phase} object history: {median(per_object):.2f} ms")
    frequent, rare = seeder.users[0], seeder.users[-1]
    cases.time("by_user frequent [:50]", lambda: list(AuditEvent.objects.by_user(frequent)[:50]))
    cases.time("by_user rare [:50]", lambda: list(AuditEvent.objects.by_user(rare)[:50]))
    cases.time("estimated_count()", lambda: AuditEvent.objects.all().estimated_count())
    heavy = Order.objects.get(pk=seeder.heavy_pk)
    dormant = Order.objects.get(pk=seeder.dormant_pk)
    cases.time(
        "100k-event object tracks(obj)[:25]", lambda: list(AuditEvent.objects.tracks(heavy)[:25])
    )
    cases.time(
        "dormant 100k-event object tracks(obj)[:25]",
        lambda: list(AuditEvent.objects.tracks(dormant)[:25]),
    )


def admin_page_urls(seeder: Seeder) -> dict[str, str]:
    normal = pick_objects(seeder)[0]
    frequent, rare = seeder.users[0], seeder.users[-1]
    pages = {
        "admin timeline, normal order": reverse("admin:shop_order_history", args=[normal.pk]),
        "admin timeline, 100k-event order": reverse(
            "admin:shop_order_history", args=[seeder.heavy_pk]
        ),
        "admin timeline, dormant 100k-event order": reverse(
            "admin:shop_order_history", args=[seeder.dormant_pk]
        ),
    }
    try:
        browser = reverse("admin:audit_app_auditevent_changelist")
    except NoReverseMatch:
        return pages
    pages["browser unfiltered"] = browser
    pages["browser ?user= (frequent)"] = f"{browser}?user={browser_user_param(frequent)}"
    pages["browser ?user= (rare)"] = f"{browser}?user={browser_user_param(rare)}"
    pages["browser ?model=shop.order"] = f"{browser}?model=shop.order"
    return pages


def admin_pages(seeder: Seeder, sizes: dict, cases: Cases) -> None:
    """Object timelines and event browser pages, rendered in-process."""
    # Django closes the connection after each request when CONN_MAX_AGE is 0; keep it
    # open (as persistent connections or a pooler do) so that pages are not timed with
    # a fresh connection and cold catalog caches.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    client = Client()
    client.force_login(seeder.superuser)

    def page(url: str) -> Callable[[], Any]:
        def get() -> None:
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {response.status_code}")

        return get

    pages = admin_page_urls(seeder)
    if "browser unfiltered" not in pages:
        cases.results["event browser"] = "skipped: no event browser"
        log(f"  {cases.phase} event browser: skipped, no event browser")
    for name, url in pages.items():
        try:
            cases.time(name, page(url), sizes["admin_runs"])
            cases.results[name]["url"] = url
        except RuntimeError as exc:
            cases.results[name] = {"error": str(exc)}
            log(f"  {cases.phase} {name}: {exc}")


def changeset_timeline(seeder: Seeder, sizes: dict, cases: Cases) -> None:
    """The newest timeline page of an order with 1,000 items and ~10,000 events."""
    pk = getattr(seeder, "changeset_pk", None)
    if pk is None:
        pk = seeder.changeset_pk = create_changeset_order(seeder.superuser)
        analyze_all()
    order = Order.objects.get(pk=pk)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    client = Client()
    client.force_login(seeder.superuser)
    url = reverse("admin:shop_order_history", args=[pk])

    def page() -> None:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}")

    cases.time("change-set timeline page (1,000 items, ~10k events)", page, sizes["admin_runs"])
    cases.time(
        "changesets()[:25] of that order",
        lambda: AuditEvent.objects.tracks(order).changesets()[:25],
    )
    events = AuditEvent.objects.tracks(order).without_diffs().count()
    cases.results["change-set order events"] = events
    log(f"  {cases.phase} change-set order: {events:,} events")


def analyze_all() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def phase_counts(seeder: Seeder) -> dict[str, int]:
    """What the phase's database holds, for the report."""
    heavy = Order.objects.get(pk=seeder.heavy_pk)
    dormant = Order.objects.get(pk=seeder.dormant_pk)
    frequent, rare = seeder.users[0], seeder.users[-1]
    return {
        "events": seeder.total_events(),
        "100k-event object events": AuditEvent.objects.tracks(heavy).without_diffs().count(),
        "dormant object events": AuditEvent.objects.tracks(dormant).without_diffs().count(),
        "frequent user events": AuditEvent.objects.by_user(frequent).without_diffs().count(),
        "rare user events": AuditEvent.objects.by_user(rare).without_diffs().count(),
        "contexts": execute("SELECT count(*) FROM audit_app_context")[0][0],
    }


# ---------------------------------------------------------------------------------------
# export (child processes)


def vm_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return -1


def export_queryset(since: Any) -> Any:
    return AuditEvent.objects.across(Order).filter(created_at__gte=since)


def child_export(mode: str, since: str) -> None:
    """Runs in a fresh process: export, then report time, bytes and peak RSS."""
    from django.utils.dateparse import parse_datetime

    since_dt = parse_datetime(since)
    connection.ensure_connection()
    hwm_before = vm_kb("VmHWM")
    size = lines = 0
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as out:
        if mode == "copy":
            statement = (
                "COPY (SELECT * FROM shop_orderevent WHERE audit_created_at >= %s "
                "ORDER BY audit_created_at DESC, audit_id DESC) TO STDOUT WITH (FORMAT csv)"
            )
            with connection.cursor() as cursor, cursor.cursor.copy(statement, [since_dt]) as copy:
                for chunk in copy:
                    data = bytes(chunk)
                    size += len(data)
                    lines += data.count(b"\n")
                    out.write(data)
        else:
            stream = export.stream_jsonl if mode == "jsonl" else export.stream_csv
            for data in stream(export_queryset(since_dt), diff=mode != "csv-nodiff"):
                size += len(data)
                lines += data.count(b"\n")
                out.write(data)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "mode": mode,
                "seconds": seconds,
                "bytes": size,
                "lines": lines,
                "hwm_before_kb": hwm_before,
                "hwm_kb": vm_kb("VmHWM"),
            }
        )
    )


def run_child(mode: str, since: str) -> dict[str, Any]:
    db = connection.settings_dict
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        host = url_quote(db["HOST"], safe="")
        port = f":{db['PORT']}" if db["PORT"] else ""
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{host}{port}/{db['NAME']}"
    output = subprocess.run(  # noqa: S603 (our own script)
        [sys.executable, __file__, "--child-export", mode, "--since", since],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure_export(sizes: dict) -> dict[str, Any]:
    """The newest ``export_events`` Order events in every mode, rounds rotating the modes."""
    n = sizes["export_events"]
    since = execute(
        "SELECT audit_created_at FROM shop_orderevent "
        "ORDER BY audit_created_at DESC, audit_id DESC OFFSET %s LIMIT 1",
        [n - 1],
    )
    since_value = since[0][0] if since else datetime(2000, 1, 1, tzinfo=dt_timezone.utc)
    since_text = since_value.isoformat()
    rows = execute(
        "SELECT count(*) FROM shop_orderevent WHERE audit_created_at >= %s", [since_value]
    )[0][0]
    log(f"export: {rows} Order events since {since_text}")
    run_child("csv", since_text)  # warm-up, untimed
    samples: dict[str, list[dict]] = {mode: [] for mode in EXPORT_MODES}
    for round_ in range(sizes["export_runs"]):
        for mode in rotated(list(samples), round_):
            sample = run_child(mode, since_text)
            samples[mode].append(sample)
            log(
                f"  export {mode}: {sample['seconds']:.2f} s, "
                f"VmHWM {sample['hwm_kb'] / 1024:.0f} MB"
            )
    summary: dict[str, Any] = {"rows": rows, "since": since_text}
    for mode, runs in samples.items():
        summary[mode] = {
            "median_s": median([r["seconds"] for r in runs]),
            "seconds": [r["seconds"] for r in runs],
            "peak_rss_mb": max(r["hwm_kb"] for r in runs) / 1024,
            "idle_rss_mb": max(r["hwm_before_kb"] for r in runs) / 1024,
            "bytes": runs[0]["bytes"],
            "lines": runs[0]["lines"],
        }
    statement, params = export.rows_sql(export_queryset(since_value))
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
        summary["explain"] = "\n".join(row[0] for row in cursor.fetchall())
    return summary


# ---------------------------------------------------------------------------------------
# backfill and disk


def measure_backfill(sizes: dict) -> dict[str, Any]:
    """audit_app.backfill() of rows created untracked; checks one event per row."""
    n = sizes["backfill_rows"]
    event_table = q(Credential.audit_event_model.audit_spec.event_table)
    with audit_app.disable_tracking("bench seed"):
        execute(
            "INSERT INTO trackapp_credential (token) "
            "SELECT md5(g::text) FROM generate_series(1, %s) AS g",
            [n],
        )
    times = []
    for _ in range(sizes["backfill_runs"]):
        execute(f"TRUNCATE {event_table}")
        execute("VACUUM (ANALYZE) trackapp_credential")
        execute(f"VACUUM (ANALYZE) {event_table}")
        execute("CHECKPOINT")
        t0 = time.perf_counter()
        written = audit_app.backfill(Credential)
        times.append(time.perf_counter() - t0)
        if written != n:
            raise RuntimeError(f"backfill wrote {written} events, expected {n}")
        log(f"  backfill {n} rows: {times[-1]:.2f} s")
    return {"rows": n, "median_s": median(times), "seconds": times}


def measure_disk() -> dict[str, Any]:
    """Size of every event table and of the context table."""
    tables = []
    total_events = 0
    for model, _, _ in MIX:
        table = model.audit_event_model.audit_spec.event_table
        rows, heap, indexes, total = execute(
            f"SELECT count(*), pg_relation_size(%s), pg_indexes_size(%s), "
            f"pg_total_relation_size(%s) FROM {q(table)}",
            [table, table, table],
        )[0]
        total_events += rows
        tables.append(
            {"table": table, "rows": rows, "heap": heap, "indexes": indexes, "total": total}
        )
    ctx_rows, ctx_total, ctx_indexes = execute(
        "SELECT count(*), pg_total_relation_size('audit_app_context'), "
        "pg_indexes_size('audit_app_context') FROM audit_app_context"
    )[0]
    return {
        "tables": tables,
        "events": total_events,
        "context": {"rows": ctx_rows, "total": ctx_total, "indexes": ctx_indexes},
    }


# ---------------------------------------------------------------------------------------
# Report


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return f"{value:,.{digits}f}"
    return "-"


def print_growth(title: str, key: str, data: dict[str, Any]) -> None:
    """One scenario's cases at the big size against the small one, with their targets."""
    small, big = data["phases"]["small"][key], data["phases"]["big"][key]
    rows = []
    for name, big_result in big.items():
        if not isinstance(big_result, dict) or "median_ms" not in big_result:
            rows.append([name, "-", str(big_result)[:60], "-", "-", "-", "-"])
            continue
        small_ms = small.get(name, {}).get("median_ms", float("nan"))
        ratio = big_result["median_ms"] / small_ms if small_ms else float("nan")
        target = READ_TARGETS.get(name)
        verdict = "-"
        if target:
            met = big_result["median_ms"] < target and ratio <= TARGET_GROWTH
            verdict = f"<{target:.0f} ms, <=2x: {'met' if met else 'MISSED'}"
        rows.append(
            [
                name,
                fmt(small_ms),
                fmt(big_result["median_ms"]),
                fmt(ratio),
                str(big_result.get("queries", "-")),
                str(big_result.get("events", "")),
                verdict,
            ]
        )
    headers = ["case", "small ms", "big ms", "big/small", "queries", "events", "target"]
    print_table(headers, rows, title)


def print_export(ex: dict[str, Any]) -> None:
    floor = ex["copy"]["median_s"]
    rows = []
    for mode, label in EXPORT_MODES.items():
        r = ex[mode]
        if mode == "copy":
            target = "floor"
        else:
            met = r["median_s"] < TARGET_EXPORT_S and r["peak_rss_mb"] < TARGET_EXPORT_MB
            target = f"<{TARGET_EXPORT_S:.0f} s, <{TARGET_EXPORT_MB:.0f} MB: " + (
                "met" if met else "MISSED"
            )
        rows.append(
            [
                label,
                fmt(r["median_s"]),
                fmt(r["median_s"] / floor),
                fmt(r["peak_rss_mb"], 0),
                fmt(r["idle_rss_mb"], 0),
                fmt(r["bytes"] / MiB, 0),
                target,
            ]
        )
    print_table(
        ["mode", "s", "x COPY", "peak RSS MB", "idle MB", "output MiB", "target"],
        rows,
        f"export: {ex['rows']:,} Order events (fresh child process per run)",
    )


def print_backfill(bf: dict[str, Any]) -> None:
    rate = bf["rows"] / bf["median_s"]
    met = "met" if bf["median_s"] < TARGET_BACKFILL_S else "MISSED"
    print(f"\n## backfill: {bf['rows']:,} Credential rows\n")
    print(
        f"median {bf['median_s']:.2f} s ({rate:,.0f} rows/s; runs "
        f"{', '.join(f'{s:.2f}' for s in bf['seconds'])}); "
        f"target <{TARGET_BACKFILL_S:.0f} s: {met}"
    )


def print_disk(disk: dict[str, Any]) -> None:
    rows = []
    for t in disk["tables"]:
        per = t["total"] / MiB / (t["rows"] / 1e6) if t["rows"] else float("nan")
        rows.append(
            [
                t["table"],
                f"{t['rows']:,}",
                fmt(t["heap"] / MiB, 1),
                fmt(t["indexes"] / MiB, 1),
                fmt(t["total"] / MiB, 1),
                fmt(per, 0),
                fmt(t["total"] / t["rows"], 0) if t["rows"] else "-",
            ]
        )
    events_total = sum(t["total"] for t in disk["tables"])
    ctx = disk["context"]
    n = disk["events"] / 1e6
    both = events_total + ctx["total"]
    rows += [
        [
            "all event tables",
            f"{disk['events']:,}",
            "",
            "",
            fmt(events_total / MiB, 1),
            fmt(events_total / MiB / n, 0),
            fmt(events_total / disk["events"], 0),
        ],
        [
            "audit_app_context",
            f"{ctx['rows']:,}",
            "",
            fmt(ctx["indexes"] / MiB, 1),
            fmt(ctx["total"] / MiB, 1),
            fmt(ctx["total"] / MiB / n, 0),
            "(per event)",
        ],
        ["events + context", "", "", "", fmt(both / MiB, 1), fmt(both / MiB / n, 0), ""],
    ]
    print_table(
        ["table", "rows", "heap", "indexes", "total", "per 1M events", "bytes/event"],
        rows,
        f"disk: at {disk['events']:,} events (pg_total_relation_size, MiB)",
    )


def report(data: dict[str, Any], sizes: dict) -> None:
    phases = data["phases"]
    for phase in ("small", "big"):
        if phase in phases:
            counts, seed = phases[phase]["counts"], phases[phase]["seed"]
            print(
                f"\nseeding to {counts['events']:,} events ({counts['contexts']:,} contexts): "
                + ", ".join(f"{k} {fmt(v, 1)}" for k, v in seed.items())
            )
    if "small" in phases:
        small, big = phases["small"]["counts"], phases["big"]["counts"]
        print(
            f"\nMedian ms of {sizes['runs']} warm runs (admin pages: {sizes['admin_runs']}); "
            f"small = {small['events']:,} events, big = {big['events']:,}"
        )
        for title, key in (
            ("history-reads: small and big database", "history-reads"),
            ("admin-pages: small and big database (server time)", "admin-pages"),
            ("changeset-timeline: small and big database (server time)", "changeset-timeline"),
        ):
            if key in phases["big"]:
                print_growth(title, key, data)
        print("\ncounts (small):", json.dumps(small))
        print("counts (big):", json.dumps(big))
    if "export" in data:
        print_export(data["export"])
    if "backfill" in data:
        print_backfill(data["backfill"])
    if "disk" in data:
        print_disk(data["disk"])


def write_explains(path: Path, data: dict[str, Any]) -> None:
    parts = []
    for phase, measured in data["phases"].items():
        for explains in measured.get("explains", {}).values():
            for name, info in explains.items():
                if "plan" not in info:
                    continue
                statements = "\n".join(info["statements"])
                parts.append(
                    f"### [{phase}] {name}: {info['queries']} queries, slowest "
                    f"{info['slowest_ms']:.2f} ms\n\n{statements}\n\nslowest:\n{info['sql']}\n\n"
                    f"{info['plan']}\n"
                )
    if "export" in data:
        parts.append(f"### export query\n\n{data['export']['explain']}\n")
    path.write_text("\n".join(parts))


# ---------------------------------------------------------------------------------------
# Command line

PHASE_SCENARIOS = {
    "history-reads": history_reads,
    "admin-pages": admin_pages,
    "changeset-timeline": changeset_timeline,
}
SCENARIOS = {
    "history-reads": "newest page, one object's history, one user's page, count; 10k and 10M",
    "admin-pages": "object timelines and event browser pages, rendered in-process; 10k and 10M",
    "changeset-timeline": "newest timeline page of an order with 1,000 items, ~10k events",
    "disk": "size of every event table and the context table at 10M events",
    "export": "CSV (with and without diffs) and JSON Lines of 1M events, next to a COPY",
    "backfill": "audit_app.backfill() of 1M rows",
}


def parse_args() -> argparse.Namespace:
    width = max(map(len, SCENARIOS))
    lines = [f"  {name.ljust(width)}  {summary}" for name, summary in SCENARIOS.items()]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="scenarios (sizes of the full run; --quick shrinks them):\n" + "\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--events", type=int, help="events of the big phase (default 10M)")
    parser.add_argument("--small", type=int, help="events of the small phase (default 10k)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(SCENARIOS),
        metavar="NAME",
        help="run these scenarios only (the database is seeded the same way)",
    )
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--explain", type=Path, help="EXPLAIN output (default: a temp file)")
    parser.add_argument("--child-export", choices=list(EXPORT_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--since", help=argparse.SUPPRESS)
    return parser.parse_args()


def run_phases(
    sizes: dict,
    wanted: set[str],
    data: dict[str, Any],
    seeder: Seeder | None = None,
    scenarios: dict[str, Callable[[Seeder, dict, Cases], None]] | None = None,
    disk: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Seed the small database, measure; grow it to the big one, measure again.

    ``seeder``, ``scenarios`` and ``disk`` default to this script's; the partitioned
    variant (``bench/reads_partitioned.py``) passes its own.
    """
    seeder = seeder or Seeder(sizes["events"], sizes["heavy"])
    for phase, target in (("small", sizes["small"]), ("big", sizes["events"])):
        log(f"seeding to {target:,} events")
        seed = seeder.grow(target)
        log(f"seeded: {seed}")
        measured: dict[str, Any] = {"seed": seed, "explains": {}}
        for name, scenario in (scenarios or PHASE_SCENARIOS).items():
            if name in wanted:
                machine.wait_for_quiet()
                cases = Cases(phase, sizes["runs"], {}, {})
                scenario(seeder, sizes, cases)
                measured[name], measured["explains"][name] = cases.results, cases.explains
        measured["counts"] = phase_counts(seeder)
        data["phases"][phase] = measured
        if phase == "big" and "disk" in wanted:
            data["disk"] = (disk or measure_disk)()


def main() -> None:
    args = parse_args()
    if args.child_export:
        child_export(args.child_export, args.since)
        return
    sizes = dict(QUICK if args.quick else FULL)
    if args.events:
        sizes["events"] = args.events
    if args.small:
        sizes["small"] = args.small
    wanted = set(args.only or SCENARIOS)
    if other_benchmark_running("bench/tracking.py"):
        log("WARNING: bench/tracking.py is running: timings will be disturbed")
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    machine.find_postmaster()
    facts = describe_environment()
    print_environment("audit_app reads benchmark" + (" (--quick)" if args.quick else ""), facts)
    data: dict[str, Any] = {"sizes": sizes, "server": facts, "phases": {}}
    if wanted & {"history-reads", "admin-pages", "changeset-timeline", "disk", "export"}:
        run_phases(sizes, wanted, data)
    if "export" in wanted:
        machine.wait_for_quiet()
        data["export"] = measure_export(sizes)
    if "backfill" in wanted:
        machine.wait_for_quiet()
        data["backfill"] = measure_backfill(sizes)
    data["benchmark_s"] = time.perf_counter() - started
    finish(args, data, sizes, report, prefix="bench-reads-")


def finish(args: Any, data: dict[str, Any], sizes: Any, report: Any, *, prefix: str) -> None:
    """Write the EXPLAINs, print the report and the machine's quietness, save the JSON."""
    explain_path = args.explain or Path(tempfile.mkdtemp(prefix=prefix)) / "explain.txt"
    write_explains(explain_path, data)
    report(data, sizes)
    print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the slowest statement of every case: {explain_path}")
    print_quiet_summary(data["benchmark_s"])
    if args.json:
        args.json.write_text(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    main()
