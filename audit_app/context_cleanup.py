"""Deleting the context rows that no event or bypass record points at any more.

An event is written at or after its context row: the row's time is its transaction's
``now()``, the event's ``clock_timestamp()``, later in the same transaction or in a
later transaction of the same frame. So after the events before a date are pruned,
only context rows made before that date can have lost their last reference, and the
events left that point at such rows are few (a request that spanned the date). Per
id space, the ids of those rows lie in one range; one index range scan per referring
table collects the ids in it still referenced, and the rest of the range made before
the date goes, batch by batch. No event table is probed per context row.

Only rows made a day or more ago go: a transaction still writing with a context row
(it reuses the row's id without reading it again) must not lose it between the scan
and the delete, and no transaction of a frame lives that long.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.utils import timezone

from audit_app import retention_sql as rsql
from audit_app import sql
from audit_app.batch_delete import BatchDeleter, protection

# Context rows younger than this stay, whatever the prune's date.
GRACE = datetime.timedelta(days=1)


def referring_tables(cursor: Any) -> list[tuple[str, str]]:
    """(table, column) of every table whose rows point at context rows: event tables
    (live, retired from tracking or archived after a prune) and the bypass table."""
    cursor.execute(rsql.REFERRING_TABLES_SQL)
    tables = [(name, sql.CONTEXT) for (name,) in cursor.fetchall()]
    return [*tables, (sql.BYPASS_TABLE, "context_id")]


def candidate_ranges(cursor: Any, before: datetime.datetime) -> list[tuple[int, int]]:
    """Per id space, the (lowest, highest) id of the context rows made before ``before``."""
    cursor.execute(rsql.CONTEXT_RANGES_SQL, [before])
    return [(low, high) for low, high in cursor.fetchall()]


def referenced(cursor: Any, ranges: list[tuple[int, int]]) -> list[int]:
    """The context ids within ``ranges`` that some row still points at."""
    statement, params = rsql.referenced_sql(referring_tables(cursor), ranges)
    cursor.execute(statement, params)
    return sorted(row[0] for row in cursor.fetchall())


def delete_unreferenced(cursor: Any, before: datetime.datetime, batch_size: int) -> int:
    """Delete the context rows made before ``before`` that nothing points at; return
    how many went."""
    before = min(before, timezone.now() - GRACE)
    ranges = candidate_ranges(cursor, before)
    if not ranges:
        return 0
    kept = referenced(cursor, ranges)
    deleter = BatchDeleter(cursor, sql.CONTEXT_TABLE, protection(sql.CONTEXT_TABLE))
    total = 0
    for low, high in ranges:
        floor = max(low - 1, -(2**63))
        total += deleter.run(
            rsql.delete_contexts_sql,
            lambda after, high=high, floor=floor: {
                "after": max(after, floor),
                "high": high,
                "before": before,
                "kept": kept,
            },
            batch_size,
        )
    return total
