"""What the partitioning tests share: partitioned event tables, rows at a chosen time."""

from __future__ import annotations

import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from audit_app import partitioning, sql

# Converted "this long ago": the converted history becomes the partition of what came
# before a past boundary, and the events a test writes now land in a partition made
# ahead of time, as in a table that has been partitioned for a while.
CONVERTED_AGO = datetime.timedelta(days=75)


def partition(*models: Any, interval: str = "month") -> None:
    """Partition the (empty) event tables of ``models`` by ``interval`` in the current
    transaction, with partitions from a past conversion up to the coming intervals."""
    for model in models:
        table = model.audit_event_model._meta.db_table
        partitioning.convert(
            table, interval, concurrently=False, now=timezone.now() - CONVERTED_AGO
        )
        partitioning.ensure_partitions(table)


def table_of(model: Any) -> str:
    return model.audit_event_model._meta.db_table


def all_rows(table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (all its partitions), in id order."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {sql.quote(table)} ORDER BY audit_id")
        return cursor.fetchall()


def where_rows_are(table: str) -> dict[str, int]:
    """Rows per partition of ``table`` (partitions without rows left out)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text, count(*) FROM {sql.quote(table)} GROUP BY 1"
        )
        return {name.strip('"'): count for name, count in cursor.fetchall()}


def write_event_at(model: Any, moment: datetime.datetime, **values: Any) -> None:
    """Insert an event of ``model`` dated ``moment`` straight into its event table (the
    database would date a captured one with the time of the write)."""
    table = table_of(model)
    columns = {"audit_created_at": moment, "audit_label": "insert", **values}
    names = ", ".join(map(sql.quote, columns))
    marks = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {sql.quote(table)} ({names}) VALUES ({marks})", list(columns.values())
        )
