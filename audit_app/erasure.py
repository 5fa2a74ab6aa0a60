"""Erase the recorded values of a field the tracked model no longer has, on the record.

History keeps a removed field's values on purpose (see ``audit_app.operations``). When
they must go, for example to answer a privacy erasure request, this drops the retired
columns that hold them and leaves a row in ``audit_app_bypass`` saying who erased what,
how many events held a value, and why, as ``audit prune`` does.
"""

from __future__ import annotations

from django.db import connections, models, transaction

from audit_app import column_history, sql
from audit_app.column_history import HISTORY_TABLE
from audit_app.exceptions import TrackingError
from audit_app.registry import event_model_of


def erase_retired(
    model: type[models.Model],
    field_name: str,
    *,
    reason: str,
    dry_run: bool = False,
    using: str = "default",
) -> int:
    """Drop the recorded values of ``model``'s retired field ``field_name``; return how
    many events held one. With ``dry_run``, only count them."""
    event_model = event_model_of(model)
    table = event_model._meta.db_table
    if not reason.strip():
        raise TrackingError("Say why the values are erased (reason): it goes on the record.")
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT id, column_name FROM {HISTORY_TABLE} WHERE event_table = %s "
            "AND field_name = %s AND retired_after IS NOT NULL",
            [table, field_name],
        )
        facts = cursor.fetchall()
        if not facts:
            raise TrackingError(_no_such_field(model, event_model, field_name))
        held = " OR ".join(f"{sql.quote(column)} IS NOT NULL" for _, column in facts)
        cursor.execute(f"SELECT count(*) FROM {sql.quote(table)} WHERE {held}")
        count = cursor.fetchone()[0]
        if dry_run:
            return count
        for fact_id, column in facts:
            # Dropping a column rewrites nothing: append-only protection (against UPDATE)
            # stays on, and the values are gone from every read at once.
            cursor.execute(f"ALTER TABLE {sql.quote(table)} DROP COLUMN {sql.quote(column)}")
            cursor.execute(f"DELETE FROM {HISTORY_TABLE} WHERE id = %s", [fact_id])
        cursor.execute(
            f"INSERT INTO {sql.quote(sql.BYPASS_TABLE)} "
            "(created_at, table_name, operation, row_count, reason, context_id) "
            f"VALUES (now(), %s, 'ERASE', %s, %s, {sql.CONTEXT_FUNCTION}())",
            [table, count, f"erase retired field {field_name}: {reason}"],
        )
    column_history.forget()
    return count


def _no_such_field(model: type[models.Model], event_model: type[models.Model], name: str) -> str:
    live = {n for n, _column in event_model.audit_fields}
    if name in live:
        return (
            f"{model._meta.label}.{name} is still a tracked field; only the values of a field "
            "the model no longer has can be erased. Remove it from the model and migrate first."
        )
    retired = sorted(column_history.retired_fields(event_model))
    return f"{model._meta.label} has no removed field {name!r} in its history" + (
        f"; its removed fields are {', '.join(retired)}." if retired else "."
    )
