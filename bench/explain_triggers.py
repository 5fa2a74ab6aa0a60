"""EXPLAIN ANALYZE of the statement inside audit_app's statement-level UPDATE trigger.

Transition tables exist only inside a trigger, and this PostgreSQL build has no
``auto_explain``. So the event-writing ``INSERT ... SELECT`` of the UPDATE trigger
audit_app installed on the benchmark's tracked model is read back from the database,
and a diagnostic trigger on a copy of the table runs ``EXPLAIN (ANALYZE, BUFFERS)`` of
it through dynamic SQL, with the same function settings, and prints the plan as
notices. First for a 1-row UPDATE (the plan a trigger keeps when its first statement
in a session changes one row, e.g. a ``save()``), then for an UPDATE of every row.
Run from the repository root::

    .venv/bin/python bench/explain_triggers.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "example_project"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from audit_app import sql as audit_sql  # noqa: E402
from bench.benchapp.models import PlainOrder, TrackedOrder  # noqa: E402
from bench.harness import execute, q  # noqa: E402
from bench.tracking_data import (  # noqa: E402
    ID_COLUMNS,
    SOURCE,
    bulk_context,
    create_schema,
    event_table,
)

TABLE = "bench_diag"


def installed_update_statement() -> tuple[str, str]:
    """The INSERT ... SELECT of the tracked model's UPDATE trigger, and its SET clauses."""
    found = execute(
        "SELECT pg_get_functiondef(t.tgfoid), p.proconfig FROM pg_trigger t "
        "JOIN pg_proc p ON p.oid = t.tgfoid "
        "WHERE t.tgrelid = %s::regclass AND t.tgname LIKE %s",
        [TrackedOrder._meta.db_table, "pgtrigger_audit_update%"],
    )
    if len(found) != 1:
        raise SystemExit(f"expected one audit UPDATE trigger on TrackedOrder, found {len(found)}")
    source, config = found[0]
    insert = re.escape(f"INSERT INTO {q(event_table(TrackedOrder))}")
    match = re.search(rf"({insert}.*?);\s*RETURN NULL;", source, re.DOTALL)
    if not match:
        raise SystemExit(f"no event INSERT found in the trigger function:\n{source}")
    settings = " ".join(
        f"SET {name} = '{value}'" for name, _, value in (c.partition("=") for c in config or [])
    )
    return match.group(1), settings


def install(statement: str, settings: str) -> None:
    execute(f"DROP TABLE IF EXISTS {TABLE}")
    execute(f"CREATE TABLE {TABLE} (LIKE {PlainOrder._meta.db_table} INCLUDING ALL)")
    old, new = q(audit_sql.OLD_TABLE), q(audit_sql.NEW_TABLE)
    execute(
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
        CREATE TRIGGER bench_diag_update AFTER UPDATE ON {TABLE}
            REFERENCING OLD TABLE AS {old} NEW TABLE AS {new}
            FOR EACH STATEMENT EXECUTE FUNCTION bench_diag_update();
        """
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    create_schema({"rows": args.rows, "disk_orders": 0})
    statement, settings = installed_update_statement()
    print(f"function settings: {settings or 'none'}\nstatement:\n{statement}")
    install(statement, settings)
    cols = ", ".join(ID_COLUMNS)
    execute(f"INSERT INTO {TABLE} ({cols}) SELECT {cols} FROM {SOURCE} WHERE id <= %s", [args.rows])
    execute(f"VACUUM ANALYZE {TABLE}, {event_table(TrackedOrder)}")
    connection.close()
    connection.ensure_connection()
    connection.connection.add_notice_handler(lambda d: print("    " + d.message_primary))
    for label, where in (("1 row", f"id = {args.rows}"), (f"{args.rows} rows", "TRUE")):
        print(f"\n### UPDATE of {label}\n")
        start = time.perf_counter()
        with bulk_context():
            execute(f"UPDATE {TABLE} SET quantity = quantity + 1, is_paid = TRUE WHERE {where}")
        print(f"\n    (UPDATE incl. EXPLAIN ANALYZE: {time.perf_counter() - start:.3f}s)")
    execute(f"DROP TABLE IF EXISTS {TABLE}")
    execute("DROP FUNCTION IF EXISTS bench_diag_update()")


if __name__ == "__main__":
    main()
