"""Load oracle (research J1): concurrent writers, then an exact reconciliation.

The CI size is small (4 writers x 5 s by default); ``bench/load_oracle.py`` runs the same
workload large. ``AUDIT_ORACLE_WORKERS`` and ``AUDIT_ORACLE_SECONDS`` resize it here.
"""

import os

import pytest
from django.db import connection, transaction

from audit_app import sql
from tests.reliability.oracle import MODELS, reconcile, run_load

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = int(os.environ.get("AUDIT_ORACLE_WORKERS", "4"))
SECONDS = float(os.environ.get("AUDIT_ORACLE_SECONDS", "5"))

OPERATIONS = [
    "save_insert",
    "save_update",
    "noop",
    "queryset_update",
    "bulk_create",
    "bulk_update",
    "upsert",
    "delete",
    "queryset_delete",
    "executemany",
    "shared_update",
    "bypass",
]


def test_every_committed_change_has_exactly_one_event_with_its_writers_context():
    result = run_load(WORKERS, SECONDS, log=print)
    report = reconcile(result)
    print(report.summary())
    print(dict(result.ledger.stats))
    assert report.mismatch_count == 0, report.summary()

    # The workload did what it claims, so that zero mismatches means something.
    stats = result.ledger.stats
    assert not [op for op in OPERATIONS if stats[op] == 0]
    assert stats["savepoint rollbacks"] > 0
    assert stats["transactions rolled back"] > 0
    assert stats["shape autocommit"] > 0
    assert result.ledger.rolled_back
    assert report.events_checked == report.expected_events >= 200
    assert report.bypass_records_checked > 0
    workers = {e.context["worker"] for e in result.ledger.committed}
    assert workers == {"setup", *range(WORKERS)}


def test_the_oracle_reports_lost_duplicated_stray_and_misattributed_events():
    """Tamper with the outcome of a clean run: the reconciliation must notice each kind."""
    result = run_load(2, 1.0, seed=7)
    assert reconcile(result).mismatch_count == 0
    assert result.ledger.rolled_back
    table = sql.quote(MODELS["widget"].audit_event_model._meta.db_table)
    columns = "audit_created_at, audit_label, audit_context_id, id, name, size, data, secret_token"
    stray = sorted(result.ledger.rolled_back)[0]
    with transaction.atomic(), connection.cursor() as cursor:
        # As the tables' owner may: history is append-only.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(f"SELECT audit_id FROM {table} ORDER BY audit_id DESC LIMIT 4")
        lost, copied, unattributed, dangling = (row[0] for row in cursor.fetchall())
        cursor.execute(f"DELETE FROM {table} WHERE audit_id = %s", [lost])
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table} WHERE audit_id = %s",
            [copied],
        )
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT audit_created_at, 'update', "
            f"audit_context_id, id, %s, size, data, secret_token FROM {table} WHERE audit_id = %s",
            [stray, copied],
        )
        cursor.execute(
            f"UPDATE {table} SET audit_context_id = NULL WHERE audit_id = %s", [unattributed]
        )
        cursor.execute(
            f"UPDATE {table} SET audit_context_id = 2147483647 WHERE audit_id = %s", [dangling]
        )
        live = sql.quote(MODELS["rowwidget"]._meta.db_table)
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
        cursor.execute(
            f"UPDATE {live} SET name = %s WHERE id = (SELECT max(id) FROM {live})", [stray]
        )

    report = reconcile(result)
    assert {
        "missing events",
        "duplicate events",
        "unexpected events",
        "rolled-back nonce in events",
        "events without context",
        "dangling context ids",
        "rolled-back nonce in live rows",
        "live rows differ",
    } <= set(report.mismatches), report.summary()
