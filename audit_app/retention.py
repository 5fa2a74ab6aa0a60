"""Retention: delete events older than a date, in batches, on the record.

This is the one sanctioned way past append-only protection. For each batch, inside the
batch's own transaction, it skips the protection trigger with
``session_replication_role = replica`` when the role may set it (a superuser, or a
grant of SET on it): no lock beyond the DELETE's, so the table's writers never wait.
Otherwise it disables the trigger (which needs the table owner, as migrations do, and
locks out writers for the batch), deletes and enables it again. Each pruned table
leaves a row in ``audit_app_bypass`` saying who pruned what and why.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Sequence
from typing import Any

import pgtrigger
from django.db import connections, models, transaction

from audit_app import sql
from audit_app.registry import event_models
from audit_app.runtime import current_context
from audit_app.sealing import prune_records
from audit_app.triggers import AppendOnly


def _protection(model: type[models.Model]) -> list[str]:
    """pgids of the append-only triggers on ``model``'s table."""
    return [
        trigger.get_pgid(model)
        for registered_model, trigger in pgtrigger.registered()
        if registered_model is model and isinstance(trigger, AppendOnly)
    ]


def may_skip_triggers(cursor: Any) -> bool:
    """Whether the role may set ``session_replication_role`` (a superuser, or on
    PostgreSQL 15+ a role granted SET on it).

    Then a prune batch skips the protection trigger for its own transaction only;
    otherwise it disables the trigger, which locks out the table's writers for the
    batch. The application role of docs/security.md may do neither.
    """
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if cursor.fetchone()[0]:
        return True
    if cursor.db.pg_version < 150000:
        return False
    cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
    return bool(cursor.fetchone()[0])


def _delete_batches(
    cursor: Any,
    table: str,
    protected: list[str],
    where: str,
    params: list[Any],
    batch_size: int,
    record: Callable[[Any, str, list[int]], None] | None = None,
) -> int:
    total = 0
    quoted = sql.quote(table)
    key = "audit_id" if table != sql.CONTEXT_TABLE else "id"
    skip = bool(protected) and may_skip_triggers(cursor)
    while True:
        with transaction.atomic(using=cursor.db.alias):
            if skip:
                # No lock beyond the DELETE's own: writers of the table go on.
                cursor.execute("SET LOCAL session_replication_role = replica")
            for pgid in [] if skip else protected:
                cursor.execute(f"ALTER TABLE {quoted} DISABLE TRIGGER {sql.quote(pgid)}")
            cursor.execute(
                f"DELETE FROM {quoted} WHERE {key} IN (SELECT {key} FROM {quoted} WHERE {where} "
                f"ORDER BY {key} LIMIT {int(batch_size)})"
                + (f" RETURNING {key}" if record else ""),
                params,
            )
            deleted = cursor.rowcount
            if record:
                # Sealed history: the prune record is written in the deleting transaction.
                record(cursor, table, [row[0] for row in cursor.fetchall()])
            for pgid in [] if skip else protected:
                cursor.execute(f"ALTER TABLE {quoted} ENABLE TRIGGER {sql.quote(pgid)}")
            if skip:
                # SET LOCAL would outlive a savepoint (prune inside a transaction).
                cursor.execute("SET LOCAL session_replication_role = origin")
        total += deleted
        if deleted < batch_size:
            return total


def _record(cursor: Any, table: str, count: int, reason: str) -> None:
    cursor.execute(
        f"INSERT INTO {sql.quote(sql.BYPASS_TABLE)} "
        "(created_at, table_name, operation, row_count, reason, context_id) "
        f"VALUES (now(), %s, 'PRUNE', %s, %s, {sql.CONTEXT_FUNCTION}())",
        [table, count, reason],
    )


def prune(
    before: datetime.datetime,
    *,
    models: Sequence[type[models.Model]] | None = None,
    dry_run: bool = False,
    batch_size: int = 10_000,
    using: str = "default",
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, int]:
    """Delete events written before ``before``; return the count per event table.

    ``models`` limits it to these tracked models. With ``dry_run`` nothing is deleted
    and the counts say what would be.
    """
    chosen = event_models() if models is None else [m.audit_event_model for m in models]
    reason = f"prune before {before.isoformat()}"
    if current_context():
        reason += f" ({', '.join(f'{k}={v}' for k, v in sorted(current_context().items()))})"
    counts: dict[str, int] = {}
    with (
        prune_records(using, reason) if not dry_run else contextlib.nullcontext() as recorder,
        connections[using].cursor() as cursor,
    ):
        for event_model in chosen:
            table = event_model._meta.db_table
            if dry_run:
                cursor.execute(
                    f"SELECT count(*) FROM {sql.quote(table)} WHERE audit_created_at < %s", [before]
                )
                counts[event_model._meta.label] = cursor.fetchone()[0]
                continue
            protected = _protection(event_model)
            if protected:
                log(f"{event_model._meta.label}: lifting append-only protection batch by batch")
            count = _delete_batches(
                cursor, table, protected, "audit_created_at < %s", [before], batch_size, recorder
            )
            counts[event_model._meta.label] = count
            if count:
                _record(cursor, table, count, reason)
            log(f"{event_model._meta.label}: {count} event(s) deleted")
        if not dry_run and models is None:
            # Contexts no remaining event (or bypass record) points at.
            unreferenced = " AND ".join(
                f"NOT EXISTS (SELECT 1 FROM {sql.quote(m._meta.db_table)} AS e "
                f"WHERE e.audit_context_id = {sql.quote(sql.CONTEXT_TABLE)}.id)"
                for m in [*event_models()]
            )
            bypass = (
                f"NOT EXISTS (SELECT 1 FROM {sql.quote(sql.BYPASS_TABLE)} AS b "
                f"WHERE b.context_id = {sql.quote(sql.CONTEXT_TABLE)}.id)"
            )
            where = " AND ".join(filter(None, ["created_at < %s", unreferenced, bypass]))
            immutable = [
                t.get_pgid(m)
                for m, t in pgtrigger.registered()
                if m._meta.db_table == sql.CONTEXT_TABLE and isinstance(t, AppendOnly)
            ]
            count = _delete_batches(
                cursor, sql.CONTEXT_TABLE, immutable, where, [before], batch_size
            )
            counts["audit_app.Context"] = count
            log(f"audit_app.Context: {count} unreferenced context(s) deleted")
    return counts
