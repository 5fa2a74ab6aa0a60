"""``makemigrations`` for event models: history is never dropped by a generated migration.

Django's autodetector would follow a tracked model's schema change on its event model
with a ``RemoveField`` (dropping every recorded value), an ``AlterField`` that converts
the recorded values to a new type (or fails on them), or a remove and an add for a
rename. This mixin rewrites those operations, for event models only, into the
operations of ``audit_app.operations``. It is mixed into the autodetector that the
``makemigrations`` command uses when the app is ready (django-pgtrigger does the same
for triggers; either order works).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands import makemigrations, migrate
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations import operations as django_ops
from django.db.migrations.autodetector import OperationDependency

from audit_app import partition_sql as psql
from audit_app.operations import (
    AddTrackedField,
    AlterTrackedField,
    PartitionEventTable,
    RenameTrackedField,
    RetireEventModel,
    RetireField,
)
from audit_app.registry import tracked_models


def _event_models() -> dict[tuple[str, str], Any]:
    """(app label, model name) of each event model -> its tracked model."""
    return {
        (m.audit_event_model._meta.app_label, m.audit_event_model._meta.model_name): m
        for m in tracked_models()
    }


def _renames_in(operations: Any, app_label: str, found: dict[Any, dict[str, str]]) -> None:
    for operation in operations:
        if isinstance(operation, django_ops.RenameField):
            renames = found.setdefault((app_label, operation.model_name_lower), {})
            renames[operation.old_name] = operation.new_name


class HistoryKeepingAutodetector:
    """Mixin for ``MigrationAutodetector``: event models keep what they recorded."""

    def changes(self, graph: Any, *args: Any, **kwargs: Any) -> Any:
        self.audit_graph = graph
        return super().changes(graph, *args, **kwargs)

    def _sort_migrations(self) -> None:
        events = _event_models()
        renames = self._tracked_renames()
        for app_label, operations in list(self.generated_operations.items()):
            self.generated_operations[app_label] = _keep_history(
                self, app_label, operations, events, renames
            )
        super()._sort_migrations()
        for app_label, operations in self.generated_operations.items():
            # Partitioning comes last (nothing depends on it): the table is converted with
            # its indexes and triggers in place, and its partitions refuse changes only
            # if its append-only trigger exists by then.
            self.generated_operations[app_label] = sorted(
                operations, key=lambda op: isinstance(op, PartitionEventTable)
            )

    def _build_migration_list(self, graph: Any = None) -> None:
        super()._build_migration_list(graph)
        # Our operations write audit_app's own table: depend on its newest migration.
        leaves = graph.leaf_nodes("audit_app") if graph is not None else []
        for migrations in self.migrations.values():
            for migration in migrations:
                if leaves and any(_is_ours(op) for op in migration.operations):
                    migration.dependencies.append(leaves[0])

    def _tracked_renames(self) -> dict[Any, dict[str, str]]:
        """Renames of tracked fields: in this run, and in the migrations on disk (a
        rename written by hand, whose event model has not followed yet)."""
        found: dict[Any, dict[str, str]] = {}
        graph = getattr(self, "audit_graph", None)
        for (app_label, _name), migration in getattr(graph, "nodes", {}).items():
            _renames_in(getattr(migration, "operations", ()), app_label, found)
        for app_label, operations in self.generated_operations.items():
            _renames_in(operations, app_label, found)
        return found


def _is_ours(operation: Any) -> bool:
    return isinstance(
        operation,
        (
            RetireField,
            AddTrackedField,
            AlterTrackedField,
            RenameTrackedField,
            RetireEventModel,
            PartitionEventTable,
        ),
    )


def _db_type(field: Any) -> str | None:
    return field.db_parameters(connection=connections[DEFAULT_DB_ALIAS])["type"]


def _keep_history(
    detector: Any,
    app_label: str,
    operations: list[Any],
    events: dict[tuple[str, str], Any],
    renames: dict[Any, dict[str, str]],
) -> list[Any]:
    renamed = _renamed_pairs(app_label, operations, events, renames)
    consumed = {id(add) for add in renamed.values()}
    retiring = _retiring_event_models(detector, app_label, operations)
    # A new event table's relations come as AddFields after its CreateModel: no history.
    created = {op.name_lower for op in operations if isinstance(op, django_ops.CreateModel)}
    result: list[Any] = []
    for op in operations:
        key = (app_label, getattr(op, "model_name_lower", None))
        if id(op) in consumed:
            continue
        if key[1] in retiring and isinstance(op, django_ops.RemoveField):
            continue  # the retired table keeps its columns: no field is removed first
        if isinstance(op, django_ops.DeleteModel) and op.name_lower in retiring:
            result.append(_like(op, RetireEventModel(op.name)))
        elif (partition := _partition_of(detector, app_label, op, events)) is not None:
            result += partition
        elif key not in events or key[1] in created or getattr(op, "name", "").startswith("audit_"):
            result.append(op)  # not an event model's history: a new table, a system field
        elif id(op) in renamed:
            add = renamed[id(op)]
            column = add.field.db_column or add.name
            rename = RenameTrackedField(op.model_name, op.name, add.name, column)
            result.append(_like(op, rename))
        elif isinstance(op, django_ops.RemoveField):
            result.append(_like(op, RetireField(op.model_name, op.name)))
        elif isinstance(op, django_ops.AddField):
            result.append(_like(op, AddTrackedField(op.model_name, op.name, op.field)))
        elif isinstance(op, django_ops.AlterField) and _retyped(detector, app_label, op):
            add = AddTrackedField(op.model_name, op.name, op.field)
            add._auto_deps = [
                *op._auto_deps,
                OperationDependency(
                    app_label, op.model_name_lower, op.name, OperationDependency.Type.REMOVE
                ),
            ]
            result += [_like(op, RetireField(op.model_name, op.name)), add]
        elif isinstance(op, django_ops.AlterField):
            result.append(_like(op, AlterTrackedField(op.model_name, op.name, op.field)))
        else:
            result.append(op)
    return result


def _renamed_pairs(
    app_label: str,
    operations: list[Any],
    events: dict[tuple[str, str], Any],
    renames: dict[Any, dict[str, str]],
) -> dict[int, Any]:
    """For each RemoveField of an event model whose tracked field was renamed, the
    AddField of the new name (keyed by the RemoveField's id)."""
    added = {
        (op.model_name_lower, op.name): op
        for op in operations
        if isinstance(op, django_ops.AddField)
    }
    pairs = {}
    for op in operations:
        key = (app_label, getattr(op, "model_name_lower", None))
        if key not in events or not isinstance(op, django_ops.RemoveField):
            continue
        tracked = events[key]._meta
        new_name = renames.get((tracked.app_label, tracked.model_name), {}).get(op.name)
        if (add := added.get((op.model_name_lower, new_name))) is not None:
            pairs[id(op)] = add
    return pairs


def _interval(comment: str | None) -> str | None:
    text = comment or ""
    return text.removeprefix(psql.COMMENT_PREFIX) if text.startswith(psql.COMMENT_PREFIX) else None


def _partition_of(
    detector: Any, app_label: str, op: Any, events: dict[tuple[str, str], Any]
) -> list[Any] | None:
    """The operations partitioning an event table, in place of ``op`` (None: ``op`` is
    not about partitioning): a new partitioned event table is created, then converted;
    a change of ``track(partition=...)`` becomes ``PartitionEventTable``."""
    if isinstance(op, django_ops.CreateModel) and (app_label, op.name_lower) in events:
        interval = _interval(op.options.get("db_table_comment"))
        if not interval:
            return None
        partition = PartitionEventTable(op.name, interval)
        create = OperationDependency(
            app_label, op.name_lower, None, OperationDependency.Type.CREATE
        )
        partition._auto_deps = [create]
        return [op, partition]
    key = (app_label, getattr(op, "name_lower", None))
    if not isinstance(op, django_ops.AlterModelTableComment) or key not in events:
        return None
    old = detector.from_state.models[key].options.get("db_table_comment")
    if _interval(old) and not _interval(op.table_comment):
        label = events[key]._meta.label
        raise CommandError(
            f"The events of {label} are partitioned by {_interval(old)}; a partitioned event "
            "table cannot become one plain table again.\nHint: keep "
            f"track(partition={_interval(old)!r}) (or another interval) on {label}."
        )
    return [_like(op, PartitionEventTable(op.name, _interval(op.table_comment)))]


def _like(original: Any, replacement: Any) -> Any:
    replacement._auto_deps = list(getattr(original, "_auto_deps", []))
    return replacement


# The system fields every event model has (audit_app.models.BaseEvent).
_EVENT_FIELDS = frozenset({"audit_id", "audit_created_at", "audit_label", "audit_context"})


def _retiring_event_models(detector: Any, app_label: str, operations: list[Any]) -> set[str]:
    """Names of the event models deleted here (their models are no longer tracked).

    Django removes a deleted model's relations first, for the order of the deletions;
    the retired table keeps them, so operations that waited for one of those removals
    wait for the table's retirement instead.
    """
    retiring = set()
    for op in operations:
        if isinstance(op, django_ops.DeleteModel):
            old = detector.from_state.models.get((app_label, op.name_lower))
            if old is not None and set(old.fields) >= _EVENT_FIELDS:
                retiring.add(op.name_lower)
    for op in operations:
        own = op.name_lower if isinstance(op, django_ops.DeleteModel) else None
        deps = []
        for dep in getattr(op, "_auto_deps", []):
            waits = dep.app_label == app_label and dep.model_name_lower in retiring
            if waits and dep.type == OperationDependency.Type.REMOVE:
                if dep.model_name_lower == own:
                    continue  # a deletion waited for its own relations' removal
                dep = dep._replace(field_name=None)
            deps.append(dep)
        op._auto_deps = deps
    return retiring


def _retyped(detector: Any, app_label: str, op: Any) -> bool:
    """Whether an ``AlterField`` changes the column's type (values would be converted)."""
    old_model = detector.from_state.models[app_label, op.model_name_lower]
    old_field = old_model.fields.get(op.name)
    if old_field is None:
        return False
    if old_field.is_relation or op.field.is_relation:
        # A key's type is its target's: a different kind of field is a retype.
        return type(old_field) is not type(op.field)
    return _db_type(old_field) != _db_type(op.field)


def install() -> None:
    """Mix the history keeping into the autodetector ``makemigrations`` uses."""
    current = makemigrations.Command.autodetector
    if issubclass(current, HistoryKeepingAutodetector):
        return
    combined = type("MigrationAutodetector", (HistoryKeepingAutodetector, current), {})
    # django-pgtrigger mixes its own into the module's class when its app is ready
    # after ours: set both, so that whichever comes last includes the other. Django
    # checks that migrate uses the same class (commands.E001).
    makemigrations.MigrationAutodetector = combined
    makemigrations.Command.autodetector = combined
    migrate.Command.autodetector = combined
