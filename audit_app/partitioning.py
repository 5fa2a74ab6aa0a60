"""Time-partitioned event tables: conversion, partitions ahead, strays, listing.

The interval of a partitioned table is read from the table's comment (set by the
migration operation or by ``manage.py audit partition``), so maintenance follows the
database as it is, whatever the code declares. SQL text comes from
``audit_app.partition_sql``; this module runs it.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, OperationalError, connections, transaction
from django.utils import timezone

from audit_app import partition_sql as psql
from audit_app import sql
from audit_app.exceptions import PartitionError
from audit_app.registry import event_models

Log = Callable[[str], None]

# How long a step that needs the table's exclusive lock may wait for it before it
# gives way (and tries again): writers queue behind a waiting lock request.
LOCK_TIMEOUT_MS = 200
LOCK_ATTEMPTS = 100
# A boundary this close is skipped: a conversion should not race the interval's end.
_MARGIN = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Partition:
    """One partition of an event table, as the catalog describes it."""

    name: str
    lower: datetime.datetime | None  # None: from the beginning of time
    upper: datetime.datetime | None  # None: to the end of time
    default: bool  # the safety net
    size: int  # bytes, indexes included

    def covers(self, moment: datetime.datetime) -> bool:
        if self.default:
            return False
        return (self.lower is None or self.lower <= moment) and (
            self.upper is None or moment < self.upper
        )


def _bound(text: str) -> datetime.datetime | None:
    text = text.strip().strip("'")
    if text in ("MINVALUE", "MAXVALUE"):
        return None
    # The catalog writes "+00"; fromisoformat wants "+00:00".
    text = re.sub(r"([+-]\d\d)$", r"\1:00", text)
    return datetime.datetime.fromisoformat(text)


def partitions(table: str, using: str = "default") -> list[Partition]:
    """The partitions of ``table`` in time order, the safety net last ([] when plain)."""
    with connections[using].cursor() as cursor:
        cursor.execute(psql.PARTITIONS_SQL, [sql.quote(table)])
        rows = cursor.fetchall()
    found = []
    for name, bound, size in rows:
        match = re.match(r"FOR VALUES FROM \((.+)\) TO \((.+)\)", bound)
        lower, upper = (_bound(match[1]), _bound(match[2])) if match else (None, None)
        found.append(Partition(name, lower, upper, match is None, size))
    earliest = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return sorted(found, key=lambda p: (p.default, p.lower or earliest))


def is_partitioned(table: str, using: str = "default") -> bool:
    with connections[using].cursor() as cursor:
        cursor.execute(psql.IS_PARTITIONED_SQL, [sql.quote(table)])
        row = cursor.fetchone()
    return bool(row and row[0])


def interval_of(table: str, using: str = "default") -> str | None:
    """The interval ``table`` is partitioned by; None for a plain table, and for one
    partitioned by another tool (pg_partman, by hand): its partitions are not ours to
    make, move or drop."""
    if not is_partitioned(table, using):
        return None
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", [sql.quote(table)])
        comment = cursor.fetchone()[0] or ""
    interval = comment.removeprefix(psql.COMMENT_PREFIX)
    return (
        interval if comment.startswith(psql.COMMENT_PREFIX) and interval in psql.INTERVALS else None
    )


def partitioned_tables(using: str = "default") -> Iterator[tuple[str, str]]:
    """(event table, interval) of each event table partitioned in ``using``."""
    for event_model in event_models():
        interval = interval_of(event_model._meta.db_table, using)
        if interval:
            yield event_model._meta.db_table, interval


def _guarded(cursor: Any, table: str) -> bool:
    """Whether ``table`` is append-only (its partitions then refuse changes too)."""
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) "
        "AND NOT tgisinternal AND tgname LIKE 'pgtrigger\\_audit\\_append\\_only\\_%%')",
        [sql.quote(table)],
    )
    return bool(cursor.fetchone()[0])


def _columns(cursor: Any, table: str) -> list[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        [sql.quote(table)],
    )
    return [row[0] for row in cursor.fetchall()]


def run_with_short_locks(using: str, statements: Sequence[str], log: Log | None = None) -> None:
    """Run ``statements`` in one transaction that waits at most ``LOCK_TIMEOUT_MS`` for
    each lock, and tries again (a while later) when it could not get one.

    A statement waiting for an exclusive lock makes every writer that comes after it
    wait too; giving way quickly bounds how long the table's writers can be held up.
    """
    connection = connections[using]
    for attempt in range(LOCK_ATTEMPTS):
        try:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
                for statement in statements:
                    cursor.execute(statement)
                cursor.execute("SET LOCAL lock_timeout = DEFAULT")
            return
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != "55P03" or attempt == LOCK_ATTEMPTS - 1:
                raise
            if log:
                log("  busy table: trying again")
            time.sleep(min(0.05 * (attempt + 1), 1.0))


def _gaps(
    existing: Sequence[Partition], start: datetime.datetime, end: datetime.datetime, interval: str
) -> list[tuple[datetime.datetime, datetime.datetime]]:
    """Interval-sized ranges between ``start`` and ``end`` that no partition covers,
    cut short where a partition begins."""
    ranges = []
    cursor = start
    while cursor < end:
        holder = next((p for p in existing if p.covers(cursor)), None)
        if holder is not None:
            if holder.upper is None:
                break
            cursor = holder.upper
            continue
        upper = psql.step(psql.floor(cursor, interval), interval)
        later = [p.lower for p in existing if p.lower is not None and p.lower > cursor]
        upper = min([upper, *later])
        ranges.append((cursor, upper))
        cursor = upper
    return ranges


def _stray_starts(cursor: Any, default: str, interval: str) -> list[datetime.datetime]:
    cursor.execute(
        f"SELECT DISTINCT date_trunc(%s, {sql.quote(sql.CREATED_AT)} AT TIME ZONE 'UTC') "
        f"FROM {sql.quote(default)}",
        [interval],
    )
    return sorted(row[0].replace(tzinfo=datetime.timezone.utc) for row in cursor.fetchall())


def ensure_partitions(
    table: str,
    *,
    using: str = "default",
    ahead: int = 2,
    now: datetime.datetime | None = None,
    log: Log = lambda message: None,
) -> list[str]:
    """Create the partitions of the current interval and the ``ahead`` next ones, and
    give the rows in the safety net partitions of their own; return the new names."""
    interval = interval_of(table, using)
    if interval is None:
        return []
    now = now or timezone.now()
    start = psql.floor(now, interval)
    end = start
    for _ in range(ahead + 1):
        end = psql.step(end, interval)
    existing = partitions(table, using)
    default = next((p.name for p in existing if p.default), None)
    wanted = _gaps(existing, start, end, interval)
    with connections[using].cursor() as cursor:
        guarded = _guarded(cursor, table)
        strays = _stray_starts(cursor, default, interval) if default else []
        columns = _columns(cursor, table)
    for moment in strays:
        wanted += _gaps(existing, moment, psql.step(moment, interval), interval)
    created = []
    for lower, upper in sorted(set(wanted)):
        name = psql.partition_name(table, lower)
        run_with_short_locks(
            using,
            psql.new_partition_sql(
                table,
                name,
                lower,
                upper,
                guarded=guarded,
                default=default,
                columns=columns,
            ),
            log,
        )
        log(f"{table}: created {name} for {lower:%Y-%m-%d} to {upper:%Y-%m-%d}")
        created.append(name)
    return created


def problems(
    table: str, *, using: str = "default", now: datetime.datetime | None = None
) -> list[str]:
    """What ``audit status`` and the system check report about a partitioned table."""
    interval = interval_of(table, using)
    if interval is None:
        return []
    found = []
    existing = partitions(table, using)
    upcoming = psql.step(psql.floor(now or timezone.now(), interval), interval)
    if not any(p.covers(upcoming) for p in existing):
        found.append(f"{table} has no partition for {upcoming:%Y-%m-%d} onwards")
    default = next((p for p in existing if p.default), None)
    if default is not None:
        with connections[using].cursor() as cursor:
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {sql.quote(default.name)})")
            if cursor.fetchone()[0]:
                found.append(f"{table} has events in its safety net {default.name}")
    return found


def maintain(using: str = "default", log: Log = lambda message: None, ahead: int = 2) -> list[str]:
    """``ensure_partitions`` for every partitioned event table; what ``migrate`` runs."""
    created = []
    for table, _interval in list(partitioned_tables(using)):
        created += ensure_partitions(table, using=using, ahead=ahead, log=log)
    return created


# -- conversion -------------------------------------------------------------------------------


def conversion_boundary(now: datetime.datetime, interval: str) -> datetime.datetime:
    """Where the converted table's range ends: the next interval boundary that is not
    about to pass (the table keeps receiving rows until the switch)."""
    boundary = psql.step(psql.floor(now, interval), interval)
    return boundary if boundary - now > _MARGIN else psql.step(boundary, interval)


def _catalog(cursor: Any, table: str) -> dict[str, Any]:
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'",
        [sql.quote(table)],
    )
    primary_key = cursor.fetchone()[0]
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = to_regclass(%s) "
        "AND NOT x.indisprimary AND i.relname <> %s ORDER BY i.relname",
        [sql.quote(table), psql.key_index_name(table)],
    )
    indexes = [(name, definition.split(" USING ", 1)[1]) for name, definition in cursor.fetchall()]
    cursor.execute(
        "SELECT tgname, pg_get_triggerdef(oid), obj_description(oid, 'pg_trigger') "
        "FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal",
        [sql.quote(table)],
    )
    triggers = cursor.fetchall()
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'audit_id')", [sql.quote(table)])
    sequence = cursor.fetchone()[0]
    cursor.execute(
        "SELECT attidentity <> '' FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attname = 'audit_id'",
        [sql.quote(table)],
    )
    identity = cursor.fetchone()[0]
    # pg_get_serial_sequence quotes and schema-qualifies; the SQL quotes names itself.
    sequence_name = sequence.rsplit(".", 1)[-1].strip('"')
    return {
        "primary_key": primary_key,
        "indexes": indexes,
        "triggers": triggers,
        "sequence": sequence_name,
        "identity": identity,
    }


def _prepare(
    table: str, upper: datetime.datetime, *, using: str, concurrently: bool, log: Log
) -> None:
    """Check and index ``table`` for the switch (``psql.prepare_conversion_sql``); a
    PartitionError, and the table as it was, if an event is dated ``upper`` or later."""
    connection = connections[using]
    check, validate, *indexing = psql.prepare_conversion_sql(
        table, upper, concurrently=concurrently
    )
    run_with_short_locks(using, [check], log)
    try:
        # A savepoint inside a transaction, a transaction of its own outside one.
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(validate)
    except IntegrityError as exc:
        run_with_short_locks(using, [psql.drop_range_check_sql(table)], log)
        raise PartitionError(
            f"{table} holds events dated {upper:%Y-%m-%d} or later, which the partition of "
            "its history cannot hold; check the database server's clock and those events "
            f"(SELECT * FROM {table} WHERE {sql.CREATED_AT} >= {sql.literal(upper.isoformat())})."
        ) from exc
    for statement in indexing:
        with connection.cursor() as cursor:
            cursor.execute(statement)


def convert(
    table: str,
    interval: str,
    *,
    using: str = "default",
    concurrently: bool = True,
    now: datetime.datetime | None = None,
    log: Log = lambda message: None,
) -> list[Partition]:
    """Turn the plain event table ``table``, history and all, into a table partitioned
    by ``interval``; return its partitions.

    The table is not rewritten: it becomes the partition of everything before the next
    interval boundary. Its writers only wait for one short switch of the catalog;
    ``concurrently`` (impossible inside a transaction, as in a migration) builds the one
    new index without stopping them either.
    """
    psql.check_interval(interval)
    connection = connections[using]
    if is_partitioned(table, using):
        current = interval_of(table, using)
        raise PartitionError(
            f"{table} is already partitioned (by {current}); manage.py audit partitions "
            "keeps it ready."
            if current
            else f"{table} is already partitioned by another tool; its partitions are left "
            "to that tool."
        )
    # CONCURRENTLY cannot run in a transaction (a migration's, a caller's atomic block):
    # there the index is built in it, and the table's writers wait for it anyway.
    concurrently = concurrently and not connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute(psql.GUARD_FUNCTION_SQL)
    upper = conversion_boundary(now or timezone.now(), interval)
    log(f"{table}: checking that every event is before {upper:%Y-%m-%d}")
    _prepare(table, upper, using=using, concurrently=concurrently, log=log)
    past = psql.past_partition_name(table, upper)
    with connection.cursor() as cursor:
        guarded = _guarded(cursor, table)
        switch = psql.switch_sql(table, upper, **_catalog(cursor, table))
    switch += [
        *([psql.guard_sql(past)] if guarded else []),
        *psql.default_partition_sql(table, guarded=guarded),
        f"COMMENT ON TABLE {sql.quote(table)} IS {sql.literal(psql.table_comment(interval))}",
    ]
    log(f"{table}: switching to a partitioned table")
    run_with_short_locks(using, switch, log)
    ensure_partitions(table, using=using, now=now, log=log)
    return partitions(table, using)
