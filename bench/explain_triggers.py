"""EXPLAIN ANALYZE of the event-writing statement of each UPDATE-trigger variant.

Transition tables exist only inside a trigger, and this PostgreSQL build has no
``auto_explain``, so a diagnostic trigger runs ``EXPLAIN (ANALYZE, BUFFERS)`` of the
variant's INSERT ... SELECT through dynamic SQL and prints the plan as notices; the
function carries the variant's SET clauses, so the plan is the one the variant's
trigger would get. First for a 1-row UPDATE (the plan a trigger caches when its first
statement in a session changes one row, e.g. a ``save()``), then for an UPDATE of every
row. Run from the repository root::

    .venv/bin/python bench/explain_triggers.py [--rows 100000] [--variants j a b c d]

Variants are the change filters of ``bench/tracking.py`` scenario 3: j (LEFT JOIN with
per-column IS DISTINCT FROM, audit_app's first filter), a (EXCEPT ALL), b (whole-row
IS DISTINCT FROM), c (no filter), d (j with nested loops and merge joins disabled).
(e, j through EXECUTE, plans like a fresh j.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tracking  # sets up Django and the benchmark database
from django.db import connection

from bench.benchapp.models import PlainOrder, TrackedOrder

TABLE = "bench_diag"


def install(variant: str) -> None:
    statement, referencing, settings = tracking.variant_statement(variant, TABLE)
    tracking.execute(f"DROP TABLE IF EXISTS {TABLE}, {TABLE}_event")
    tracking.execute(f"CREATE TABLE {TABLE} (LIKE {PlainOrder._meta.db_table} INCLUDING ALL)")
    tracking.execute(
        f"CREATE TABLE {TABLE}_event (LIKE {tracking.event_table(TrackedOrder)} INCLUDING ALL)"
    )
    tracking.execute(
        f"""
        CREATE OR REPLACE FUNCTION bench_diag_update() RETURNS trigger LANGUAGE plpgsql
        {settings} AS $body$
        DECLARE line text;
        BEGIN
            FOR line IN EXECUTE 'EXPLAIN (ANALYZE, BUFFERS) ' || $q${statement}$q$ LOOP
                RAISE NOTICE '%', line;
            END LOOP;
            RETURN NULL;
        END
        $body$;
        CREATE TRIGGER bench_diag_update AFTER UPDATE ON {TABLE} {referencing}
            FOR EACH STATEMENT EXECUTE FUNCTION bench_diag_update();
        """
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--variants", nargs="+", default=["j", "a", "b", "c", "d"], metavar="VARIANT"
    )
    args = parser.parse_args()
    tracking.create_schema({**tracking.QUICK, "rows": args.rows})
    cols = ", ".join(tracking.ID_COLUMNS)
    for variant in args.variants:
        install(variant)
        tracking.execute(
            f"INSERT INTO {TABLE} ({cols}) SELECT {cols} FROM {tracking.SOURCE} WHERE id <= %s",
            [args.rows],
        )
        tracking.execute(f"VACUUM ANALYZE {TABLE}, {TABLE}_event")
        connection.close()
        connection.ensure_connection()
        connection.connection.add_notice_handler(lambda d: print("    " + d.message_primary))
        for label, where in (("1 row", f"id = {args.rows}"), (f"{args.rows} rows", "TRUE")):
            print(f"\n### variant {variant}: UPDATE of {label}\n")
            start = time.perf_counter()
            with tracking.bulk_context():
                tracking.execute(
                    f"UPDATE {TABLE} SET quantity = quantity + 1, is_paid = TRUE WHERE {where}"
                )
            print(f"\n    (UPDATE incl. EXPLAIN ANALYZE: {time.perf_counter() - start:.3f}s)")
    tracking.execute(f"DROP TABLE IF EXISTS {TABLE}, {TABLE}_event")


if __name__ == "__main__":
    main()
