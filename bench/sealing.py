"""What does sealed history cost? Sealing, verifying, and tracked writes with sealing in use.

Run from the repository root::

    .venv/bin/python bench/sealing.py                  # 10M events and the writes, ~30 minutes
    .venv/bin/python bench/sealing.py --quick          # 200k events, tiny writes: a smoke run
    .venv/bin/python bench/sealing.py --only seal-verify --events 1000000
    .venv/bin/python bench/sealing.py --only writes

Scenarios:

- ``seal-verify``: the event table of ``TrackedOrder`` filled with a tenth of
  ``--events`` events (one context row per 5 events), straight from SQL, then sealed
  and verified; grown to ``--events``, sealed (the nine tenths added) and verified
  again; then 100k more events sealed. Seal and verify each run in a fresh child
  process: wall time, events per second, and peak resident memory of that process
  (``VmHWM``) and of its database backend. Verify runs with the command's default of
  two connections, and once with one.
- ``writes``: the write path with sealing in use against without, in the same
  interleaved rounds (``bench/harness.py``): untracked, tracked, and tracked with the
  table's history sealed before the timed statement (seal records and digests
  present, a seal run just before). Both tracked variants start from the same 100k
  events of history. Single ``save()`` calls in a request context, a 100k-row
  ``bulk_create``, a 100k-row ``QuerySet.update()``.

Results are discussed in docs/performance.md (section "Sealed history").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "example_project"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402

import audit_app  # noqa: E402
from audit_app import sql as audit_sql  # noqa: E402
from audit_app.sealing import seal  # noqa: E402
from audit_app.verification import verify  # noqa: E402
from bench import machine  # noqa: E402
from bench.benchapp.models import PlainOrder, TrackedOrder  # noqa: E402
from bench.harness import (  # noqa: E402
    RatioTable,
    Variant,
    describe_environment,
    execute,
    log,
    print_environment,
    print_load_summary,
    print_table,
    q,
    ratio_text,
    ratios,
    run_rounds,
)
from bench.tracking_data import (  # noqa: E402
    BATCH_SIZE,
    SOURCE,
    bulk_context,
    create_schema,
    event_table,
    metadata,
    reset,
    source_objects,
    update_all,
)

# Not a secret: the benchmark's throw-away database only.
settings.AUDIT_SEAL_KEY = "bench-seal-key-0123456789abcdef0123456789abcdef"

FULL = {
    "events": 10_000_000,
    "increment": 100_000,
    "rows": 100_000,  # table size of the write scenarios and of the bulk_create
    "history": 100_000,
    "saves": 5_000,
    "save_rounds": 5,
    "bulk_rounds": 3,
    "update_rounds": 5,
}
QUICK = {
    "events": 200_000,
    "increment": 10_000,
    "rows": 4_000,
    "history": 4_000,
    "saves": 200,
    "save_rounds": 2,
    "bulk_rounds": 2,
    "update_rounds": 2,
}
EVENTS_PER_CONTEXT = 5
LOAD_BATCH = 1_000_000
SEAL_TABLES = ("audit_app_seal", "audit_app_seal_chunk", "audit_app_integrity_run")


# ---------------------------------------------------------------------------------------
# History written straight from SQL


def _secondary_indexes(table: str) -> list[tuple[str, str]]:
    return [
        (name, definition)
        for name, definition in execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT LIKE %s",
            [table, "%pkey"],
        )
    ]


def add_events(count: int) -> float:
    """Append ``count`` events of TrackedOrder (and a context row per 5), in SQL; seconds.

    The values are the source orders' with small changes per version; times increase
    with the id. The secondary indexes are dropped for the load and built again after.
    """
    started = time.perf_counter()
    table = event_table(TrackedOrder)
    indexes = _secondary_indexes(table)
    for name, _ in indexes:
        execute(f"DROP INDEX {q(name)}")
    rows = execute(f"SELECT count(*) FROM {SOURCE}")[0][0]
    first = execute(f"SELECT coalesce(max(audit_id), 0) FROM {q(table)}")[0][0]
    ctx_first = execute(
        "SELECT coalesce(max(id), 0) + 1 FROM audit_app_context WHERE id < %s",
        [audit_sql.CONTEXT_KEY_MIN],
    )[0][0]
    contexts = -(-count // EVENTS_PER_CONTEXT)
    execute(
        "INSERT INTO audit_app_context (id, created_at, user_id, metadata) "
        "SELECT c, timestamptz '2026-01-01' + c * interval '1 second', NULL, "
        "jsonb_build_object('user', 1 + mod(c, 50), 'username', 'user' || (1 + mod(c, 50)), "
        "'url', '/orders/' || c || '/', 'method', 'POST', 'request_id', md5(c::text)) "
        "FROM generate_series(%s::bigint, %s::bigint) AS c",
        [ctx_first, ctx_first + contexts - 1],
    )
    execute(
        "SELECT setval(pg_get_serial_sequence('audit_app_context', 'id'), %s)",
        [ctx_first + contexts - 1],
    )
    for start in range(0, count, LOAD_BATCH):
        size = min(LOAD_BATCH, count - start)
        execute(
            f"""
            INSERT INTO {q(table)} (audit_created_at, audit_label, audit_context_id,
                audit_user_id, id, quantity, amount, reference, notes, is_paid, placed_at,
                customer_id, data)
            SELECT timestamptz '2026-01-01' + (g / {EVENTS_PER_CONTEXT}) * interval '1 second',
                   CASE WHEN g <= {rows} THEN 'insert' ELSE 'update' END,
                   {int(ctx_first)} + (g - {int(first) + 1}) / {EVENTS_PER_CONTEXT},
                   NULL, s.id, s.quantity + mod(g, 7), s.amount + mod(g, 100), s.reference,
                   s.notes, (mod(g, 2) = 0), s.placed_at, s.customer_id,
                   s.data || jsonb_build_object('rev', g)
            FROM generate_series(%s::bigint, %s::bigint) AS g
            JOIN {SOURCE} AS s ON s.id = 1 + mod(g, {rows})
            ORDER BY g
            """,
            [first + start + 1, first + start + size],
        )
    for _, definition in indexes:
        execute(definition)
    execute(f"VACUUM ANALYZE {q(table)}")
    execute("VACUUM ANALYZE audit_app_context")
    execute("CHECKPOINT")
    return time.perf_counter() - started


def empty_history() -> None:
    """No events, contexts or seal records of the tracked order model."""
    execute("SET session_replication_role = replica")
    tables = [event_table(TrackedOrder), audit_sql.CONTEXT_TABLE, *SEAL_TABLES]
    execute(f"TRUNCATE {', '.join(q(t) for t in tables)} RESTART IDENTITY")
    execute("RESET session_replication_role")


# ---------------------------------------------------------------------------------------
# seal-verify (each run in a child process)


def vm_kb(name: str) -> int:
    """A value of this process's /proc status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return -1


def child(mode: str, jobs: int) -> None:
    """Runs in a fresh process: seal or verify everything, print time and memory."""
    machine.new_session()
    started = time.perf_counter()
    if mode == "seal":
        events = seal([TrackedOrder]).events
        ok = True
    else:
        report = verify([TrackedOrder], jobs=jobs)
        events, ok = report.events, report.ok
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "mode": mode,
                "jobs": jobs,
                "seconds": seconds,
                "events": events,
                "ok": ok,
                "hwm_mib": vm_kb("VmHWM") / 1024,
                "backend_peak_mib": machine.backend_peak_mib(),
            }
        )
    )


def run_child(mode: str, jobs: int = 2) -> dict[str, Any]:
    """Run ``child`` in a fresh process on this server; its measurements."""
    db = connection.settings_dict
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        host = url_quote(db["HOST"], safe="")
        port = f":{db['PORT']}" if db["PORT"] else ""
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{host}{port}/{db['NAME']}"
    machine.wait_for_quiet()
    output = subprocess.run(  # noqa: S603 (our own script)
        [sys.executable, __file__, "--child", mode, "--jobs", str(jobs)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    if not result["ok"]:
        raise AssertionError(f"{mode} found tampering in untouched history: {result}")
    how = f" ({jobs} connections)" if mode == "verify" else ""
    log(
        f"{mode}{how}: {result['events']:,} events in {result['seconds']:.1f}s, "
        f"peak {result['hwm_mib']:.0f} MiB, backend {result['backend_peak_mib'] or 0:.0f} MiB"
    )
    return result


def seal_verify(sizes: dict) -> dict:
    """Seal and verify a tenth of the events, then all of them, then an increment."""
    empty_history()
    results: dict[str, Any] = {"phases": []}
    total = 0
    for target in (sizes["events"] // 10, sizes["events"]):
        log(f"seal-verify: writing {target - total:,} events")
        load_s = add_events(target - total)
        phase = {"events": target, "added": target - total, "load_s": load_s}
        total = target
        phase["seal"] = run_child("seal")
        phase["verify"] = [run_child("verify", 2), run_child("verify", 2), run_child("verify", 1)]
        results["phases"].append(phase)
    add_events(sizes["increment"])
    results["increment"] = run_child("seal")
    rows = []
    for phase in results["phases"]:
        sealed, checks = phase["seal"], phase["verify"]
        best = min(c["seconds"] for c in checks if c["jobs"] == 2)
        rows.append(
            [
                f"{phase['events']:,}",
                f"{sealed['events']:,} in {sealed['seconds']:.1f} s",
                f"{sealed['events'] / sealed['seconds']:,.0f}",
                f"{sealed['hwm_mib']:.0f} / {sealed['backend_peak_mib'] or 0:.0f}",
                f"{best:.1f} ({checks[0]['seconds']:.1f}, {checks[1]['seconds']:.1f})",
                f"{checks[2]['seconds']:.1f}",
                f"{phase['events'] / best:,.0f}",
                f"{max(c['hwm_mib'] for c in checks):.0f} / "
                f"{max(c['backend_peak_mib'] or 0 for c in checks):.0f}",
            ]
        )
    inc = results["increment"]
    print_table(
        [
            "events in the table",
            "sealed",
            "seal events/s",
            "seal peak MiB (client / backend)",
            "verify s, 2 connections (runs)",
            "verify s, 1 connection",
            "verify events/s",
            "verify peak MiB (client / backend)",
        ],
        rows,
        "seal-verify: sealing and verifying the events of TrackedOrder (fresh process per run)",
    )
    print(
        f"\nIncremental seal of {inc['events']:,} new events: {inc['seconds']:.2f} s "
        f"({inc['events'] / inc['seconds']:,.0f} events/s)."
    )
    results["seal_tables_mib"] = execute(
        "SELECT pg_total_relation_size('audit_app_seal_chunk') / 1048576.0"
    )[0][0]
    results["event_table_mib"] = execute(
        "SELECT pg_total_relation_size(%s) / 1048576.0", [event_table(TrackedOrder)]
    )[0][0]
    print(
        f"Stored digests: {results['seal_tables_mib']:.0f} MiB for "
        f"{total + sizes['increment']:,} events "
        f"(the event table: {results['event_table_mib']:.0f} MiB)."
    )
    return results


# ---------------------------------------------------------------------------------------
# writes: the write path with sealing in use


def history_sql(count: int) -> str:
    """``count`` update events of the tracked model's first rows, from the source."""
    table = event_table(TrackedOrder)
    return (
        f"INSERT INTO {q(table)} (audit_created_at, audit_label, id, quantity, amount, "
        "reference, notes, is_paid, placed_at, customer_id, data) "
        "SELECT now(), 'update', id, quantity, amount, reference, notes, is_paid, placed_at, "
        f"customer_id, data FROM {SOURCE} ORDER BY id LIMIT {int(count)}"
    )


def prepare(load: dict | None, history: int, sealed: bool) -> Callable[[], None]:
    """A setup: the write benchmark's reset, plus history (sealed or not) for tracked."""

    def inner() -> None:
        reset(load)
        if history:
            execute("SET session_replication_role = replica")
            execute(f"TRUNCATE {', '.join(SEAL_TABLES)} RESTART IDENTITY")
            execute(history_sql(history))
            execute("RESET session_replication_role")
            if sealed:
                seal([TrackedOrder])
            execute("VACUUM ANALYZE")
            execute("CHECKPOINT")
            machine.new_session()
            machine.wait_for_quiet()

    return inner


def write_variants(
    load: Callable[[Any], dict | None],
    history: int,
    state: Callable[[Any], Any],
    operation: Callable[[Any], Any],
) -> list[Variant]:
    """Untracked, tracked and tracked-and-sealed variants of one write scenario."""
    variants: list[Variant] = []
    for name, model, sealed in (
        ("untracked", PlainOrder, False),
        ("tracked", TrackedOrder, False),
        ("sealed", TrackedOrder, True),
    ):
        setup = prepare(load(model), history if model is TrackedOrder else 0, sealed)
        variants.append((name, lambda s=setup, m=model: (s(), state(m))[1], operation))
    return variants


LABELS = {
    "untracked": "untracked",
    "tracked": "tracked (statement level)",
    "sealed": "tracked, history sealed (seal run just before)",
}


def _table(title: str, rounds: Any, units: int, unit: str) -> dict:
    data = RatioTable(
        title,
        rounds,
        base="untracked",
        units=dict.fromkeys(rounds.times, units),
        unit=unit,
        labels=LABELS,
        also_against="tracked",
        also_for=("sealed",),
    ).print()
    sealed_vs_tracked = ratios(rounds.times, "sealed", "tracked")
    print(f"\nsealed against tracked, same rounds: {ratio_text(sealed_vs_tracked)}")
    return data


def writes(sizes: dict) -> dict:
    """Single saves, a bulk_create and an update: untracked, tracked, tracked and sealed."""
    rows, saves, history = sizes["rows"], sizes["saves"], sizes["history"]
    step = max(rows // saves, 1)
    ids = list(range(1, rows + 1, step))[:saves]

    def save_state(model: Any) -> Any:
        objs = list(model.objects.filter(id__in=ids).order_by("id"))
        return objs, [metadata(i, obj.pk) for i, obj in enumerate(objs)]

    def save_each(state: Any) -> None:
        for obj, meta in zip(*state, strict=True):
            with audit_app.context(**meta):
                obj.quantity += 1
                obj.save()

    def create(model_objs: Any) -> None:
        model, objs = model_objs
        with transaction.atomic():
            model.objects.bulk_create(objs, batch_size=BATCH_SIZE)

    def update(model: Any) -> None:
        with bulk_context():
            update_all(model)

    results = {}
    for name, load, state, operation, units, unit, rounds in (
        ("single-save", lambda m: {m: rows}, save_state, save_each, len(ids), "save",
         sizes["save_rounds"]),
        ("bulk-create", lambda m: None, lambda m: (m, source_objects(m, rows)), create, rows,
         "row", sizes["bulk_rounds"]),
        ("update", lambda m: {m: rows}, lambda m: m, update, rows, "row",
         sizes["update_rounds"]),
    ):  # fmt: skip
        variants = write_variants(load, history, state, operation)
        measured = run_rounds(f"writes {name}", variants, rounds)
        results[name] = _table(
            f"writes {name}: {units:,} {unit}s, with {history:,} events of history "
            f"({rounds} rounds)",
            measured,
            units,
            unit,
        )
    return results


# ---------------------------------------------------------------------------------------
# Command line

SCENARIOS: dict[str, Callable[[dict], Any]] = {"seal-verify": seal_verify, "writes": writes}


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("Scenarios:")[1].split("Results are")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--events", type=int, help="events of seal-verify (default 10M)")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), metavar="NAME")
    parser.add_argument("--rounds", type=int, help="override every write scenario's rounds")
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--child", choices=["seal", "verify"], help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=2, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    """Run the chosen scenarios (or be a child process measuring one run)."""
    args = parse_args()
    if args.child:
        child(args.child, args.jobs)
        return
    sizes = dict(QUICK if args.quick else FULL)
    if args.events:
        sizes["events"] = args.events
    if args.rounds:
        sizes.update({k: args.rounds for k in sizes if k.endswith("_rounds")})
    started = time.perf_counter()
    create_schema({"rows": sizes["rows"], "disk_orders": 0})
    machine.find_postmaster()
    facts = describe_environment()
    print_environment("audit_app sealing benchmark" + (" (--quick)" if args.quick else ""), facts)
    results: dict[str, Any] = {"sizes": sizes, "server": facts}
    for name in args.only or SCENARIOS:
        results[name] = SCENARIOS[name](sizes)
    elapsed = time.perf_counter() - started
    results["elapsed_s"] = elapsed
    results.update(print_load_summary(elapsed))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
