"""Migration operations that change an event table without losing recorded values.

``makemigrations`` writes them in place of Django's own operations on event models (see
``audit_app.autodetector``); they can also be written by hand:

- ``RetireField`` instead of ``RemoveField``: the column stays, renamed, and keeps every
  value it recorded; new events no longer record the field.
- ``AddTrackedField`` instead of ``AddField``: notes which events were written before
  the column existed, so they read "not recorded" instead of an empty value.
- ``RenameTrackedField`` instead of a remove and an add: the column follows the
  tracked field's new name, and the history goes on under it.
- ``AlterTrackedField`` instead of ``AlterField``: a column moved to a new name keeps
  its sealing key.
- ``RetireEventModel`` instead of ``DeleteModel`` when a model is no longer tracked:
  the event table stays, renamed.
- ``PartitionEventTable`` when ``track(partition=...)`` changes: the event table
  becomes range-partitioned on the event time, its history kept in place.

A retyped field is a ``RetireField`` followed by an ``AddTrackedField`` of the same name: the
recorded values keep their type in the retired column, never converted.

Each operation writes what it did to ``audit_app_columnhistory``, read back by
``audit_app.column_history``. A renamed column keeps the name it was first sealed
under in its comment (``audit:key=...``), so sealed events still verify.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.db.migrations.operations import (
    AddField,
    AlterField,
    AlterModelTableComment,
    DeleteModel,
    RemoveField,
    RenameField,
)
from django.db.migrations.operations.fields import FieldOperation
from django.db.migrations.state import ProjectState

from audit_app import column_history, conf, partitioning, sql
from audit_app import partition_sql as psql
from audit_app.column_history import HISTORY_TABLE, describe
from audit_app.exceptions import PartitionError
from audit_app.registry import tracked_models
from audit_app.sealing_sql import KEY_COMMENT, column_keys
from audit_app.trackers import is_masked

_MAX_IDENTIFIER = 63


def _newest_event_id(cursor: Any, table: str) -> int:
    # Called after an ALTER TABLE of ``table`` in the same transaction: its lock keeps
    # writers out until the migration commits, so no event can slip past this id.
    cursor.execute(f"SELECT coalesce(max({sql.EVENT_ID}), 0) FROM {sql.quote(table)}")
    return cursor.fetchone()[0]


def _columns(cursor: Any, table: str) -> set[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped",
        [sql.quote(table)],
    )
    return {row[0] for row in cursor.fetchall()}


def _retired_name(cursor: Any, table: str, column: str) -> str:
    taken = _columns(cursor, table)
    number = 1
    while True:
        prefix = f"audit_retired{number}_"
        name = prefix + column[: _MAX_IDENTIFIER - len(prefix)]
        if name not in taken:
            return name
        number += 1


def rename_column(schema_editor: Any, table: str, old: str, new: str) -> None:
    """Rename an event-table column, keeping the name its values were sealed under."""
    keep_key(schema_editor, table, old)
    schema_editor.execute(
        f"ALTER TABLE {sql.quote(table)} RENAME COLUMN {sql.quote(old)} TO {sql.quote(new)}"
    )


def keep_key(schema_editor: Any, table: str, column: str) -> None:
    """Write ``column``'s sealing key into its comment (its name, unless it has one), so
    that the key survives a rename."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT col_description(a.attrelid, a.attnum) FROM pg_attribute AS a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s",
            [sql.quote(table), column],
        )
        row = cursor.fetchone()
    if not (row and row[0] and row[0].startswith(KEY_COMMENT)):
        schema_editor.execute(
            f"COMMENT ON COLUMN {sql.quote(table)}.{sql.quote(column)} IS "
            f"{sql.literal(KEY_COMMENT + column)}"
        )


# Why a column was retired: its field was removed (or retyped), or the migration
# that added it was unapplied while events had recorded it.
REMOVED = "removed"
UNAPPLIED = "unapplied"


def _retire(schema_editor: Any, table: str, name: str, field: Any, *, retired_by: str) -> None:
    """Rename ``field``'s column out of the way and note which events it holds."""
    with schema_editor.connection.cursor() as cursor:
        retired = _retired_name(cursor, table, field.column)
    rename_column(schema_editor, table, field.column, retired)
    schema_editor.execute(
        f"ALTER TABLE {sql.quote(table)} ALTER COLUMN {sql.quote(retired)} DROP NOT NULL"
    )
    with schema_editor.connection.cursor() as cursor:
        values = [
            retired,
            name,
            str(field.verbose_name),
            json.dumps(describe(field)),
            is_masked(name, conf.masked_fields()),
            _newest_event_id(cursor, table),
            retired_by,
            table,
            field.column,
        ]
        # A column added after events were written already has a row: retire it.
        cursor.execute(
            f"UPDATE {HISTORY_TABLE} SET column_name = %s, field_name = %s, "
            "verbose_name = %s, description = %s, masked = %s, retired_after = %s, "
            "retired_by = %s, changed_at = now() WHERE event_table = %s AND column_name = %s",
            values,
        )
        if cursor.rowcount == 0:
            cursor.execute(
                f"INSERT INTO {HISTORY_TABLE} (column_name, field_name, verbose_name, "
                "description, masked, retired_after, retired_by, event_table, recorded_after, "
                "changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL, now())",
                values[:-1],
            )


def keep_keys_unique(schema_editor: Any, table: str, column: str) -> None:
    """Give a new ``column`` a sealing key of its own when its name is already the key
    of another column (a retired column of a field with the same name)."""
    with schema_editor.connection.cursor() as cursor:
        others = {c.key for c in column_keys(cursor, table) if c.name != column}
    if column not in others:
        return
    number = 2
    while f"{column}~{number}" in others:
        number += 1
    schema_editor.execute(
        f"COMMENT ON COLUMN {sql.quote(table)}.{sql.quote(column)} IS "
        f"{sql.literal(f'{KEY_COMMENT}{column}~{number}')}"
    )


def _event_field(
    operation: Any, app_label: str, schema_editor: Any, state: ProjectState, name: str
) -> tuple[str, Any] | None:
    """(table, field) of the event model's field ``name`` in ``state``; None when the
    database router keeps the model off this database."""
    model = state.apps.get_model(app_label, operation.model_name)
    if not operation.allow_migrate_model(schema_editor.connection.alias, model):
        return None
    return model._meta.db_table, model._meta.get_field(name)


class RetireField(RemoveField):
    """Stop recording a field in an event table; keep the values it recorded."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        found = _event_field(self, app_label, schema_editor, from_state, self.name)
        if found is None:
            return
        table, field = found
        _retire(schema_editor, table, self.name, field, retired_by=REMOVED)
        column_history.forget()

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        found = _event_field(self, app_label, schema_editor, to_state, self.name)
        if found is None:
            return
        table, field = found
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, column_name, recorded_after FROM {HISTORY_TABLE} "
                "WHERE event_table = %s AND field_name = %s AND retired_by = %s "
                "ORDER BY retired_after DESC, id DESC LIMIT 1",
                [table, self.name, REMOVED],
            )
            row = cursor.fetchone()
        if row is None:
            raise ValueError(
                f"{table} has no retired column of {self.name!r} to bring back; was it erased?"
            )
        fact_id, retired, recorded_after = row
        rename_column(schema_editor, table, retired, field.column)
        with schema_editor.connection.cursor() as cursor:
            if recorded_after is None:
                cursor.execute(f"DELETE FROM {HISTORY_TABLE} WHERE id = %s", [fact_id])
            else:
                cursor.execute(
                    f"UPDATE {HISTORY_TABLE} SET column_name = %s, retired_after = NULL, "
                    "retired_by = '', changed_at = now() WHERE id = %s",
                    [field.column, fact_id],
                )
        column_history.forget()

    def describe(self) -> str:
        return f"Retire field {self.name} of {self.model_name}, keeping its recorded values"

    @property
    def migration_name_fragment(self) -> str:
        return f"retire_{self.model_name_lower}_{self.name_lower}"


class AddTrackedField(AddField):
    """Add a field to an event table, noting that earlier events did not record it.

    Unapplied, the column is retired rather than dropped when events recorded it.
    """

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        super().database_forwards(app_label, schema_editor, from_state, to_state)
        found = _event_field(self, app_label, schema_editor, to_state, self.name)
        if found is None:
            return
        table, field = found
        keep_keys_unique(schema_editor, table, field.column)
        with schema_editor.connection.cursor() as cursor:
            after = _newest_event_id(cursor, table)
            if after:
                cursor.execute(
                    f"INSERT INTO {HISTORY_TABLE} (event_table, column_name, field_name, "
                    "verbose_name, description, masked, recorded_after, retired_after, "
                    "retired_by, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, '', now())",
                    [
                        table,
                        field.column,
                        self.name,
                        str(field.verbose_name),
                        json.dumps(describe(field)),
                        is_masked(self.name, conf.masked_fields()),
                        after,
                    ],
                )
        column_history.forget()

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        found = _event_field(self, app_label, schema_editor, from_state, self.name)
        if found is None:
            return
        table, field = found
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT recorded_after FROM {HISTORY_TABLE} WHERE event_table = %s "
                "AND column_name = %s AND retired_after IS NULL",
                [table, field.column],
            )
            row = cursor.fetchone()
            newest = _newest_event_id(cursor, table)
        if newest > (row[0] if row and row[0] else 0):
            # Events recorded the field since it was added: keep their values.
            _retire(schema_editor, table, self.name, field, retired_by=UNAPPLIED)
        else:
            super().database_backwards(app_label, schema_editor, from_state, to_state)
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {HISTORY_TABLE} WHERE event_table = %s AND column_name = %s "
                    "AND retired_after IS NULL",
                    [table, field.column],
                )
        column_history.forget()

    def reduce(self, operation: Any, app_label: str) -> Any:
        # Never folded into a plain AddField (which would drop the history facts).
        return FieldOperation.reduce(self, operation, app_label)

    def describe(self) -> str:
        return f"Add field {self.name} to {self.model_name}; earlier events did not record it"


class RenameTrackedField(RenameField):
    """Rename a field of an event model and its column, after its tracked field."""

    def __init__(self, model_name: str, old_name: str, new_name: str, column: str) -> None:
        super().__init__(model_name, old_name, new_name)
        self.column = column

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        name, args, kwargs = super().deconstruct()
        return name, args, {**kwargs, "column": self.column}

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        super().state_forwards(app_label, state)
        field = state.models[app_label, self.model_name_lower].fields[self.new_name].clone()
        field.db_column = self.column
        state.alter_field(app_label, self.model_name_lower, self.new_name, field, True)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._move(app_label, schema_editor, from_state, self.old_name, to_state, self.new_name)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._move(app_label, schema_editor, from_state, self.new_name, to_state, self.old_name)

    def _move(
        self,
        app_label: str,
        schema_editor: Any,
        from_state: ProjectState,
        from_name: str,
        to_state: ProjectState,
        to_name: str,
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        old = model._meta.get_field(from_name).column
        new = to_state.apps.get_model(app_label, self.model_name)._meta.get_field(to_name).column
        table = model._meta.db_table
        if old != new:
            rename_column(schema_editor, table, old, new)
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {HISTORY_TABLE} SET field_name = %s WHERE event_table = %s "
                "AND field_name = %s",
                [to_name, table, from_name],
            )
            cursor.execute(
                f"UPDATE {HISTORY_TABLE} SET column_name = %s WHERE event_table = %s "
                "AND column_name = %s",
                [new, table, old],
            )
        column_history.forget()

    def describe(self) -> str:
        return (
            f"Rename field {self.old_name} of {self.model_name} to {self.new_name}, "
            "keeping its history"
        )


class AlterTrackedField(AlterField):
    """An ``AlterField`` of an event model that may move the column to a new name (the
    tracked field's ``db_column`` changed): the column keeps its sealing key."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._keep_key(app_label, schema_editor, from_state, to_state)
        super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._keep_key(app_label, schema_editor, from_state, to_state)
        super().database_backwards(app_label, schema_editor, from_state, to_state)

    def _keep_key(
        self, app_label: str, schema_editor: Any, before: ProjectState, after: ProjectState
    ) -> None:
        old = _event_field(self, app_label, schema_editor, before, self.name)
        new = _event_field(self, app_label, schema_editor, after, self.name)
        if old is not None and new is not None and old[1].column != new[1].column:
            keep_key(schema_editor, old[0], old[1].column)

    def reduce(self, operation: Any, app_label: str) -> Any:
        # Never folded into a plain AlterField or AddField (which would lose the key).
        return FieldOperation.reduce(self, operation, app_label)


RETIRED_TABLE_PREFIX = "audit_retired_"


def _retired_tables(cursor: Any, table: str) -> Iterator[tuple[str, bool]]:
    """Names a retired copy of ``table`` takes, in order, and whether each is taken."""
    number = 1
    while True:
        suffix = "" if number == 1 else f"_{number}"
        name = (RETIRED_TABLE_PREFIX + table)[: _MAX_IDENTIFIER - len(suffix)] + suffix
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [sql.quote(name)])
        yield name, cursor.fetchone()[0]
        number += 1


def _move_facts(schema_editor: Any, table: str, to: str) -> None:
    # The column history belongs to the table's rows: a new table of the old name
    # (the model tracked again) starts without it.
    schema_editor.execute(
        f"UPDATE {HISTORY_TABLE} SET event_table = %s WHERE event_table = %s", [to, table]
    )
    column_history.forget()


class RetireEventModel(DeleteModel):
    """Stop tracking a model without dropping its history.

    The event table stays, renamed to ``audit_retired_<table>`` (still append-only
    where it was), without the indexes our reads needed, so that tracking the model
    again can create a new one. ``audit_app_bypass`` records it (operation
    ``RETIRE``). Unapplied, the table gets its name and indexes back.
    """

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = from_state.apps.get_model(app_label, self.name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        table = model._meta.db_table
        for index in model._meta.indexes:
            schema_editor.remove_index(model, index)
        with schema_editor.connection.cursor() as cursor:
            retired = next(name for name, taken in _retired_tables(cursor, table) if not taken)
            cursor.execute(f"SELECT count(*) FROM {sql.quote(table)}")
            count = cursor.fetchone()[0]
        schema_editor.execute(f"ALTER TABLE {sql.quote(table)} RENAME TO {sql.quote(retired)}")
        _move_facts(schema_editor, table, retired)
        schema_editor.execute(
            f"INSERT INTO {sql.quote(sql.BYPASS_TABLE)} "
            "(created_at, table_name, operation, row_count, reason, context_id) "
            f"VALUES (now(), %s, 'RETIRE', %s, %s, {sql.CONTEXT_FUNCTION}())",
            [table, count, f"model no longer tracked; its history is kept in {retired}"],
        )

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = to_state.apps.get_model(app_label, self.name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        table = model._meta.db_table
        newest = None
        with schema_editor.connection.cursor() as cursor:
            for name, taken in _retired_tables(cursor, table):
                if not taken:
                    break
                newest = name
        if newest is None:
            raise ValueError(f"No retired history of {table} to bring back.")
        retired = newest
        schema_editor.execute(f"ALTER TABLE {sql.quote(retired)} RENAME TO {sql.quote(table)}")
        _move_facts(schema_editor, retired, table)
        for index in model._meta.indexes:
            schema_editor.add_index(model, index)

    def describe(self) -> str:
        return f"Stop tracking {self.name}: keep its history in a retired table"

    @property
    def migration_name_fragment(self) -> str:
        return f"retire_{self.name_lower}"


# A migration converts a table with at most this many events (estimated) itself; a
# bigger one is converted beforehand with ``manage.py audit partition``, which does
# not hold up writers while it checks and indexes the rows.
CONVERT_IN_MIGRATION = 100_000


class PartitionEventTable(AlterModelTableComment):
    """Partition an event table by time (``track(partition=...)``).

    The table's comment names the interval, in the migration state and in the
    database, where ``audit partitions`` reads it. A plain table is converted in
    place (``audit_app.partitioning.convert``); one already partitioned (by the
    command) only takes the new interval, which applies to the partitions made from
    then on. Unapplied, the table stays partitioned: the history stays where it is.
    """

    def __init__(self, name: str, interval: str | None) -> None:
        psql.check_interval(interval)
        self.interval = interval
        super().__init__(name, psql.table_comment(interval))

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (self.__class__.__qualname__, [], {"name": self.name, "interval": self.interval})

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.name)
        using = schema_editor.connection.alias
        if not self.allow_migrate_model(using, model):
            return
        table = model._meta.db_table
        if self.interval and not partitioning.is_partitioned(table, using):
            _refuse_big_conversion(schema_editor, table, self.interval)
            partitioning.convert(table, self.interval, using=using, concurrently=False)
        super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        earlier = to_state.apps.get_model(app_label, self.name)._meta.db_table_comment
        if not (earlier or "").startswith(psql.COMMENT_PREFIX):
            # Back to "plain": the table stays partitioned, and its comment keeps naming
            # the interval its partitions are made by (``partitioning.interval_of``).
            return
        super().database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        if self.interval is None:
            return f"Stop partitioning new events of {self.name} by a declared interval"
        return f"Partition the events of {self.name} by {self.interval}"

    @property
    def migration_name_fragment(self) -> str:
        return f"partition_{self.name_lower}"


def _refuse_big_conversion(schema_editor: Any, table: str, interval: str) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [sql.quote(table)]
        )
        estimate = int(cursor.fetchone()[0])
        if estimate <= CONVERT_IN_MIGRATION:
            # Statistics lag behind a bulk load (-1: never analyzed): count, up to the
            # limit, which reads at most that many rows.
            cursor.execute(
                f"SELECT count(*) FROM (SELECT FROM {sql.quote(table)} "
                f"LIMIT {CONVERT_IN_MIGRATION + 1}) AS bounded"
            )
            estimate = cursor.fetchone()[0]
    if estimate > CONVERT_IN_MIGRATION:
        labels = [
            m._meta.label for m in tracked_models() if m.audit_event_model._meta.db_table == table
        ]
        amount = (
            f"about {estimate:,}"
            if estimate > CONVERT_IN_MIGRATION + 1
            else f"more than {CONVERT_IN_MIGRATION:,}"
        )
        raise PartitionError(
            f"{table} holds {amount} events: converting it inside a migration would "
            f"hold up its writers. Run `manage.py audit partition "
            f"{labels[0] if labels else '<app_label.Model>'} --by {interval}` first (it "
            "converts without stopping them), then migrate again."
        )
