"""Prune by partition: the partitions of an event table that lie wholly before the
cut-off go whole (detached, then dropped or kept for archiving), on the record.

Detaching waits at most a moment for its lock, as every partition change does
(``partitioning.run_with_short_locks``): writers of the table queue behind a waiting
lock request, so a busy table makes the detach give way and try again rather than hold
them up. Dropping the detached table then concerns nobody else.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from django.db import connections, transaction

from audit_app import chain, partitioning, sql
from audit_app import partition_sql as psql
from audit_app import retention_sql as rsql
from audit_app.partitioning import Partition

Log = Callable[[str], None]
# Prune records hold at most this many id runs each (a partition's ids are a few runs
# when ids follow time, as they do).
RUNS_PER_QUERY = 10_000


def whole_partitions(table: str, before: datetime.datetime, using: str) -> list[Partition]:
    """The partitions of ``table`` whose every row is before ``before`` (never the
    safety net); [] for a plain table."""
    return [
        p
        for p in partitioning.partitions(table, using)
        if not p.default and p.upper is not None and p.upper <= before
    ]


def id_runs(cursor: Any, table: str) -> tuple[chain.Runs, int]:
    """The ids of ``table`` as runs, and how many ids they hold, computed in the
    database (a partition of millions of events is a handful of runs)."""
    runs: chain.Runs = []
    count, after = 0, -(2**63)
    while True:
        cursor.execute(rsql.id_runs_sql(table, RUNS_PER_QUERY), [after])
        rows = cursor.fetchall()
        runs += [[first, last] for first, last, _ in rows]
        count += sum(number for _, _, number in rows)
        if len(rows) < RUNS_PER_QUERY:
            return runs, count
        after = rows[-1][1]


def describe(partition: Partition) -> str:
    lower = f"{partition.lower:%Y-%m-%d}" if partition.lower else "the beginning"
    return f"partition {partition.name}, {lower} to {partition.upper:%Y-%m-%d}"


def count_rows(table: str, using: str) -> int:
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {sql.quote(table)}")
        return int(cursor.fetchone()[0])


def remove(
    table: str,
    partition: Partition,
    *,
    archive: bool,
    reason: str,
    record_runs: Callable[[Any, str, chain.Runs], None] | None,
    using: str,
    log: Log,
) -> int:
    """Detach ``partition`` of ``table`` and drop it (kept as ``<name>_archived`` with
    ``archive``); return its row count.

    The rows are counted, and with sealed history their ids recorded, after the detach
    (nothing can reach the table any more) and in the transaction that drops it, so the
    record and the drop go together.
    """
    with connections[using].cursor() as cursor:
        cursor.execute(psql.GUARD_FUNCTION_SQL)
    partitioning.run_with_short_locks(using, rsql.detach_sql(table, partition.name), log)
    archived = rsql.archived_name(partition.name)
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        runs, count = id_runs(cursor, archived)
        if record_runs and runs:
            record_runs(cursor, table, runs)
        what = f"kept as {archived} for archiving" if archive else "dropped"
        record(cursor, table, count, f"{reason}: {describe(partition)} {what}")
        if not archive:
            cursor.execute(f"DROP TABLE {sql.quote(archived)}")
    return count


def record(cursor: Any, table: str, count: int, reason: str) -> None:
    """The ``audit_app_bypass`` row of a prune of ``table``."""
    cursor.execute(
        f"INSERT INTO {sql.quote(sql.BYPASS_TABLE)} "
        "(created_at, table_name, operation, row_count, reason, context_id) "
        f"VALUES (now(), %s, 'PRUNE', %s, %s, {sql.CONTEXT_FUNCTION}())",
        [table, count, reason],
    )
