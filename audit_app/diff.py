"""The diff engine: what changed between two versions, as structured data.

Pure of HTTP: the admin renders these structures, exports and users' code read them.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connections, models
from django.utils import formats, timezone

from audit_app import sql
from audit_app.column_history import RetiredField, masked_names, retired_fields
from audit_app.event_sql import MASKED, data_sql, load_json, previous_sql

ACTIONS = {"insert": "created", "update": "changed", "delete": "deleted", "snapshot": "snapshot"}
# Text longer than this (or any TextField) is diffed word by word.
LONG_TEXT = 80
_WORDS = re.compile(r"\s+|[^\s]+")


def action_of(label: str, metadata: dict[str, Any]) -> str:
    """The action an event stands for; reverts and restores are told by their context."""
    special = metadata.get("audit_action") if metadata else None
    if special in ("reverted", "restored") and label in ("insert", "update"):
        return special
    return ACTIONS.get(label, label)


# --- raw diffs for a page of AuditEvents -------------------------------------------------


def previous_data(
    event_model: type[models.Model],
    event_ids: Sequence[int],
    using: str = "default",
    times: Sequence[Any] = (),
) -> dict[int, dict[str, Any] | None]:
    """For each event id, the data of the same object's previous event (any label).

    ``times``, the events' times when known, only narrow where the events are looked
    up: on a partitioned event table, to the partitions that hold them.
    """
    table = sql.quote(event_model.audit_spec.event_table)
    statement = (
        f"SELECT cur.audit_id, {previous_sql(event_model, 'cur')} "
        f"FROM {table} AS cur WHERE cur.audit_id = ANY(%s)"
    )
    params: list[Any] = [list(event_ids)]
    if times:
        statement += f" AND cur.{sql.CREATED_AT} = ANY(%s)"
        params.append(list(times))
    with connections[using].cursor() as cursor:
        cursor.execute(statement, params)
        return {event_id: load_json(data) for event_id, data in cursor.fetchall()}


def raw_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, list[Any]] | None:
    if old is None:
        return None
    keys = [k for k in new if k in old] + [k for k in old if k not in new]
    return {k: [old.get(k), new.get(k)] for k in keys if old.get(k) != new.get(k)}


def _masked_names(event: Any) -> frozenset[str]:
    return masked_names(apps.get_model(event.event_model))


def attach_diffs(events: Sequence[Any], using: str = "default") -> None:
    """Set ``diff`` on a page of AuditEvents: one query per event table on the page."""
    by_model: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        by_model[event.event_model].append(event)
    for label, group in by_model.items():
        event_model = apps.get_model(label)
        previous = previous_data(
            event_model, [e.event_id for e in group], using, [e.created_at for e in group]
        )
        masked = masked_names(event_model)
        for event in group:
            diff = raw_diff(previous.get(event.event_id), event.raw_data)
            if diff is not None:
                diff = {k: ([MASKED, MASKED] if k in masked else v) for k, v in diff.items()}
            event.diff = diff


# --- structured changes -------------------------------------------------------------------


@dataclass
class Related:
    """A foreign-key value: the related object's label, and whether it still exists."""

    model: type[models.Model]
    pk: Any
    label: str = ""
    exists: bool = False


@dataclass
class JsonChange:
    path: str
    op: str  # added, removed, changed
    old: Any = None
    new: Any = None


@dataclass
class FieldChange:
    """One field's change, ready to render."""

    name: str
    verbose_name: str
    # text, longtext, choice, fk, json, decimal, datetime, date, bool, masked, removed, value
    kind: str
    old: Any
    new: Any
    old_display: str = ""
    new_display: str = ""
    related_old: Related | None = None
    related_new: Related | None = None
    json_changes: list[JsonChange] = field(default_factory=list)
    text_ops: list[tuple[str, str, str]] = field(default_factory=list)
    # The model no longer has the field (its kind is "removed", or "masked").
    retired: bool = False

    @property
    def masked(self) -> bool:
        return self.kind == "masked"


def _kind(model_field: models.Field | None, old: Any, new: Any) -> str:
    if model_field is None:
        return "removed"
    if model_field.is_relation:
        return "fk"
    if model_field.flatchoices:
        return "choice"
    if isinstance(model_field, models.JSONField):
        return "json"
    if isinstance(model_field, models.BooleanField):
        return "bool"
    if isinstance(model_field, models.DecimalField):
        return "decimal"
    if isinstance(model_field, models.DateTimeField):
        return "datetime"
    if isinstance(model_field, models.DateField):
        return "date"
    if isinstance(model_field, models.TextField) or any(
        isinstance(v, str) and len(v) > LONG_TEXT for v in (old, new)
    ):
        return "longtext"
    if isinstance(model_field, (models.CharField, models.TextField)):
        return "text"
    return "value"


def to_python(model_field: models.Field | None, value: Any) -> Any:
    """Turn a JSON image of a column back into the field's Python value, where possible."""
    if model_field is None or value is None:
        return value
    target = model_field.target_field if model_field.is_relation else model_field
    try:
        return target.to_python(value)
    except (ValidationError, TypeError, ValueError):
        return value


def display(model_field: models.Field | None, kind: str, value: Any) -> str:
    """A human string for one value, localised, datetimes in the active timezone."""
    if value is None:
        return "—"
    if kind == "choice":
        return str(dict(model_field.flatchoices).get(value, value))
    if kind == "bool":
        return "Yes" if value else "No"
    if kind == "datetime" and hasattr(value, "tzinfo"):
        aware = value if timezone.is_aware(value) else timezone.make_aware(value)
        return formats.localize(timezone.localtime(aware))
    if kind in ("decimal", "date", "value"):
        return str(formats.localize(value))
    return str(value)


def json_changes(old: Any, new: Any, path: str = "") -> list[JsonChange]:
    """Added, removed and changed keys and positions between two JSON values."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                changes.append(JsonChange(sub, "removed", old[key], None))
            elif key not in old:
                changes.append(JsonChange(sub, "added", None, new[key]))
            else:
                changes.extend(json_changes(old[key], new[key], sub))
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = []
        for index in range(max(len(old), len(new))):
            sub = f"{path}[{index}]"
            if index >= len(new):
                changes.append(JsonChange(sub, "removed", old[index], None))
            elif index >= len(old):
                changes.append(JsonChange(sub, "added", None, new[index]))
            else:
                changes.extend(json_changes(old[index], new[index], sub))
        return changes
    if old != new:
        return [JsonChange(path or "$", "changed", old, new)]
    return []


def text_ops(old: str, new: str) -> list[tuple[str, str, str]]:
    """Word-level opcodes: (equal|replace|delete|insert, old text, new text)."""
    a, b = _WORDS.findall(old or ""), _WORDS.findall(new or "")
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [
        (tag, "".join(a[i1:i2]), "".join(b[j1:j2])) for tag, i1, i2, j1, j2 in matcher.get_opcodes()
    ]


# What a side of a change shows when the event did not hold the field.
FIELD_REMOVED = "field removed"
NOT_RECORDED = "not recorded"


def _retired(tracked_model: type[models.Model]) -> dict[str, RetiredField]:
    event_model = tracked_model.__dict__.get("audit_event_model")
    return retired_fields(event_model) if event_model is not None else {}


def field_changes(
    tracked_model: type[models.Model],
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    *,
    masked: Iterable[str] = (),
    only_changed: bool = True,
    gone: Iterable[str] = (),
) -> list[FieldChange]:
    """Structured changes from ``old`` to ``new`` data (either may be None).

    A field in ``old`` but not in ``new`` (or named in ``gone``) was not recorded by the
    newer version: removed from the model since, or not recorded yet. Fields the model
    no longer has are of kind ``removed``, labelled and shown as they were recorded.
    """
    old, new = old or {}, new or {}
    masked = set(masked)
    gone = set(gone) | {k for k in old if k not in new}
    opts = tracked_model._meta.concrete_model._meta
    retired = _retired(tracked_model)
    changes = []
    for name in [*new, *(k for k in old if k not in new)]:
        try:
            model_field: models.Field | None = opts.get_field(name)
        except FieldDoesNotExist:
            model_field = None
        # The field that reads the values: the model's, else the retired one's.
        reader = model_field or (retired[name].field() if name in retired else None)
        verbose = str(reader.verbose_name) if reader is not None else name
        if name in masked or (model_field is None and name in retired and retired[name].masked):
            # Markers are compared, never shown.
            if not only_changed or old.get(name) != new.get(name):
                change = FieldChange(name, verbose, "masked", None, None, "changed", "changed")
                change.retired = model_field is None
                changes.append(change)
            continue
        before, after = to_python(reader, old.get(name)), to_python(reader, new.get(name))
        if only_changed and before == after and name not in gone:
            continue
        kind = _kind(reader, before, after)
        change = FieldChange(
            name,
            verbose,
            "removed" if model_field is None else kind,
            before,
            after,
            display(reader, kind, before),
            display(reader, kind, after),
            retired=model_field is None,
        )
        if kind == "fk":
            related = reader.related_model
            change.related_old = Related(related, before) if before is not None else None
            if after is not None and name not in gone:
                change.related_new = Related(related, after)
        if name in gone:
            change.new_display = FIELD_REMOVED if model_field is None else NOT_RECORDED
        elif kind == "json" and model_field is not None:
            change.json_changes = json_changes(before, after)
        elif kind == "longtext" and model_field is not None:
            change.text_ops = text_ops(before or "", after or "")
        changes.append(change)
    return changes


def resolve_related(changes: Iterable[FieldChange], using: str = "default") -> None:
    """Fill labels of FK values, one query per related model for all ``changes``."""
    refs: dict[type[models.Model], list[Related]] = defaultdict(list)
    for change in changes:
        for ref in (change.related_old, change.related_new):
            if ref is not None:
                refs[ref.model].append(ref)
    for model, group in refs.items():
        found = model._default_manager.using(using).in_bulk({r.pk for r in group})
        for ref in group:
            obj = found.get(ref.pk)
            ref.exists = obj is not None
            ref.label = (
                str(obj) if obj is not None else f"{model._meta.verbose_name} {ref.pk} (deleted)"
            )


def event_changes(event: Any, *, only_changed: bool = True) -> list[FieldChange]:
    """Structured changes of one AuditEvent against the object's previous event."""
    tracked = apps.get_model(event.obj_model)
    masked = _masked_names(event)
    if event.diff is None:
        # First event of the object: everything it recorded is new (but its key).
        pk_name = tracked._meta.concrete_model._meta.pk.name
        data = {k: v for k, v in event.data.items() if k != pk_name}
        return field_changes(tracked, None, data, masked=masked, only_changed=only_changed)
    old = {k: v[0] for k, v in event.diff.items()}
    new = {k: v[1] for k, v in event.diff.items()}
    for name in masked & set(event.diff):
        # The diff lists a masked field only when its marker changed; values are hidden.
        old[name], new[name] = 0, 1
    # A field the previous version recorded and this one did not (see raw_diff).
    gone = [k for k in event.diff if k not in event.data]
    return field_changes(tracked, old, new, masked=masked, gone=gone)


def compare(
    tracked_model: type[models.Model],
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    *,
    masked: Iterable[str] = (),
) -> list[FieldChange]:
    """Changes between any two versions (data dicts) of one object."""
    return field_changes(tracked_model, old, new, masked=masked)


def current_data(obj: models.Model, event_model: type[models.Model]) -> dict[str, Any] | None:
    """The live row of ``obj`` in the same image its events use (None if it is gone)."""
    spec = event_model.audit_spec
    statement = (
        f"SELECT {data_sql(event_model, 'e', live=True, markers=True)} "
        f"FROM {sql.quote(spec.table)} AS e "
        f"WHERE e.{sql.quote(spec.pk_column)} = %s"
    )
    pk = obj._meta.concrete_model._meta.pk.get_db_prep_value(obj.pk, connections["default"])
    with connections[obj._state.db or "default"].cursor() as cursor:
        cursor.execute(statement, [pk])
        row = cursor.fetchone()
    return load_json(row[0]) if row else None
