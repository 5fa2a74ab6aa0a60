"""Retention: remove events older than a date, on the record.

Per event table: a partitioned table first loses the partitions that lie wholly before
the date (``partition_retention``: detached with short lock waits, then dropped, or kept
for archiving); what is left before the date (the partition that straddles it, the
safety net, or a plain table's rows) is deleted in batches past the append-only
protection (``batch_delete``). Each removal leaves a ``PRUNE`` row in
``audit_app_bypass`` saying who pruned what and why, and with sealed history an
authenticated prune record of the ids. Context rows no event points at any more go last
(``context_cleanup``).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, models

from audit_app import partition_retention, sql
from audit_app import retention_sql as rsql
from audit_app.batch_delete import BatchDeleter, protection_of
from audit_app.context_cleanup import delete_unreferenced
from audit_app.registry import event_model_of, event_models
from audit_app.runtime import current_context
from audit_app.sealing import PruneRecorder, prune_records

Log = Callable[[str], None]


class PruneCounts(dict):
    """Rows removed (or, in a dry run, to be removed) per event model label, and the
    tables detached for archiving (``archived``: names to dump and then drop)."""

    def __init__(self) -> None:
        super().__init__()
        self.archived: list[str] = []


def _reason(before: datetime.datetime) -> str:
    reason = f"prune before {before.isoformat()}"
    if current_context():
        reason += f" ({', '.join(f'{k}={v}' for k, v in sorted(current_context().items()))})"
    return reason


def _whole_partitions(
    table: str, label: str, before: datetime.datetime, *, archive: bool, dry_run: bool,
    reason: str, recorder: PruneRecorder | None, using: str, counts: PruneCounts, say: Log,
) -> int:  # fmt: skip
    """Remove the partitions of ``table`` that lie wholly before ``before``; return
    the rows they held."""
    removed = 0
    verb = "detach" if archive else "drop"
    for partition in partition_retention.whole_partitions(table, before, using):
        what = partition_retention.describe(partition)
        if dry_run:
            count = partition_retention.count_rows(partition.name, using)
            say(f"{label}: would {verb} {what} ({count} events)")
        else:
            count = partition_retention.remove(
                table, partition, archive=archive, reason=reason,
                record_runs=recorder.record_runs if recorder else None, using=using, log=say,
            )  # fmt: skip
            done = "detached" if archive else "dropped"
            say(f"{label}: {done} {what} ({count} events)")
            if archive:
                counts.archived.append(rsql.archived_name(partition.name))
        removed += count
    return removed


def _remainder(
    cursor: Any,
    event_model: type[models.Model],
    before: datetime.datetime,
    *,
    dry_run: bool,
    batch_size: int,
    recorder: PruneRecorder | None,
    log: Log,
) -> int:
    """Delete the rows before ``before`` left after the whole partitions went (a dry
    run counts every row before it)."""
    table = event_model._meta.db_table
    if dry_run:
        cursor.execute(rsql.count_before_sql(table), [before])
        return int(cursor.fetchone()[0])
    where = f"{sql.quote(sql.CREATED_AT)} < %s"
    deleter = BatchDeleter(cursor, table, protection_of(event_model))
    if deleter.protected:
        how = "skipping" if deleter.skip else "disabling (with short lock waits)"
        log(f"{event_model._meta.label}: {how} append-only protection batch by batch")
    return deleter.run(
        lambda size: rsql.delete_batch_sql(table, sql.EVENT_ID, where, size),
        lambda after: [before, before, after],
        batch_size,
        recorder,
    )


def prune(
    before: datetime.datetime,
    *,
    models: Sequence[type[models.Model]] | None = None,
    dry_run: bool = False,
    archive: bool = False,
    batch_size: int = 10_000,
    using: str = "default",
    log: Log = lambda message: None,
    say: Log | None = None,
) -> PruneCounts:
    """Remove events written before ``before``; return the count per event model.

    ``models`` limits it to these tracked models. Partitions that lie wholly before the
    date are dropped whole, or with ``archive`` detached and kept (``counts.archived``).
    With ``dry_run`` nothing changes and the counts say what would be removed. ``log``
    gets details, ``say`` (default: ``log``) each partition removed.
    """
    say = say or log
    chosen = event_models() if models is None else [event_model_of(m) for m in models]
    reason = _reason(before)
    counts = PruneCounts()
    with (
        prune_records(using, reason) if not dry_run else contextlib.nullcontext() as recorder,
        connections[using].cursor() as cursor,
    ):
        for event_model in chosen:
            label, table = event_model._meta.label, event_model._meta.db_table
            whole = _whole_partitions(
                table, label, before, archive=archive, dry_run=dry_run, reason=reason,
                recorder=recorder, using=using, counts=counts, say=say,
            )  # fmt: skip
            rest = _remainder(
                cursor, event_model, before, dry_run=dry_run, batch_size=batch_size,
                recorder=recorder, log=log,
            )  # fmt: skip
            if dry_run:
                rest -= whole  # the count before the date included the whole partitions
            elif rest:
                partition_retention.record(cursor, table, rest, f"{reason}: deleted in batches")
            counts[label] = whole + rest
            log(f"{label}: {rest} event(s) deleted in batches")
        if not dry_run and models is None:
            count = delete_unreferenced(cursor, before, batch_size)
            counts["audit_app.Context"] = count
            log(f"audit_app.Context: {count} unreferenced context(s) deleted")
    return counts
