"""Load oracle, large: N concurrent writers for a while, then an exact reconciliation.

Run from the repository root::

    .venv/bin/python bench/load_oracle.py                       # 8 writers x 120 s
    .venv/bin/python bench/load_oracle.py --workers 32 --seconds 60
    .venv/bin/python bench/load_oracle.py --quick               # 2 writers x 3 s

The workload and the checks are those of ``tests/reliability/test_load_oracle.py``
(``tests/reliability/oracle.py``): every committed change must have exactly one event
with its writer's context, nothing of rolled-back work may be visible anywhere, live
rows must match the writers' ledgers. The database is a private, durable PostgreSQL
(``fsync`` on) started from the pgserver package and deleted afterwards, unless
``DATABASE_URL`` points at another (empty) server. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "example_project"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="2 writers x 3 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.seconds = 2, 3.0

    # The oracle writes to the test app's models; a durable throw-away server of its own.
    os.environ["AUDIT_DB_PURPOSE"] = "bench"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from tests.reliability.oracle import reconcile, run_load

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), current_setting('fsync')")
        version, fsync = cursor.fetchone()
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
    if args.workers + 5 > max_connections:
        parser.error(f"--workers {args.workers} needs more than max_connections={max_connections}")

    print(f"# Load oracle: {args.workers} writers x {args.seconds:g} s")
    print(f"server: {version.split(',')[0]}, fsync={fsync}")
    print(f"client: Python {platform.python_version()}, Django {django.get_version()}, ", end="")
    print(f"{os.cpu_count()} CPU(s)")
    result = run_load(args.workers, args.seconds, seed=args.seed, log=print)
    began = time.monotonic()
    report = reconcile(result)
    checked_in = time.monotonic() - began
    stats = result.ledger.stats
    committed = stats["transactions committed"]
    rolled_back = stats["transactions rolled back"]
    print()
    print(f"transactions: {committed} committed, {rolled_back} rolled back, ", end="")
    print(f"{stats['savepoint rollbacks']} savepoint rollbacks")
    print(f"throughput: {committed / result.duration:.0f} commits/s, ", end="")
    print(f"{report.events_checked / result.duration:.0f} events/s")
    print(f"rolled-back nonces: {len(result.ledger.rolled_back)}")
    print("operations: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))
    print(f"reconciliation: {checked_in:.1f} s")
    print(report.summary(limit=10))
    print("RESULT:", "OK" if report.mismatch_count == 0 else "MISMATCHES")
    return 0 if report.mismatch_count == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
