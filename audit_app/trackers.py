"""Trackers and conditions: declarations of what to record, compiled to SQL elsewhere."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pgtrigger

from audit_app import sql

Row = "ROW"
Statement = "STATEMENT"

#: Raw SQL condition over ``OLD."column"`` / ``NEW."column"``.
Condition = pgtrigger.Condition
#: Django-style condition over ``old__field`` / ``new__field``.
Q = pgtrigger.Q
F = pgtrigger.F

#: What an event label may be: it is stored in every event row and shown in the admin.
LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def check_label(label: str, error: type[Exception] = ValueError) -> str:
    """Return ``label`` if it is a valid event label, else raise ``error`` saying why."""
    if not isinstance(label, str) or not LABEL_RE.match(label):
        raise error(
            f"Event label {label!r} must be 1 to 32 letters, digits, '_' or '-' "
            f"({LABEL_RE.pattern})."
        )
    return label


class AnyChange:
    """True when any of ``fields`` (default: every tracked field) changed value."""

    def __init__(self, *fields: str) -> None:
        self.fields = tuple(fields)

    def columns(self, model: Any, tracked_columns: Sequence[str]) -> list[str]:
        if not self.fields:
            return list(tracked_columns)
        by_name = {f.name: f for f in model._meta.concrete_fields}
        by_name.update({f.attname: f for f in model._meta.concrete_fields})
        missing = [name for name in self.fields if name not in by_name]
        if missing:
            raise ValueError(
                f"AnyChange on {model._meta.label} names unknown field(s) {missing}; "
                "use concrete field names of that model."
            )
        return [by_name[name].column for name in self.fields]


def render_condition(condition: Any, model: Any, tracked_columns: Sequence[str]) -> str:
    """Render ``condition`` to SQL over ``OLD."col"`` / ``NEW."col"`` (empty: always true)."""
    if condition is None:
        return ""
    if isinstance(condition, AnyChange):
        return sql.any_change_sql(condition.columns(model, tracked_columns))
    return condition.resolve(model).strip()


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class Tracker:
    """Base of every tracker: a label that names the events it writes."""

    label: str = ""

    def __init__(self, label: str | None = None) -> None:
        self.label = check_label(label or self.label)


class ManualEvent(Tracker):
    """No trigger: events are written with ``audit_app.create_event(obj, label=...)``."""


class DatabaseTracker(Tracker):
    """A tracker backed by a PostgreSQL trigger on the tracked table."""

    operation: str = ""  # INSERT, UPDATE or DELETE
    row: str = "NEW"  # which image of the row the event stores
    default_condition: Any = None

    def __init__(
        self,
        label: str | None = None,
        *,
        condition: Any = UNSET,
        level: str | None = None,
    ) -> None:
        super().__init__(label)
        self.condition = self.default_condition if condition is UNSET else condition
        if level is not None and level.upper() not in (Row, Statement):
            raise ValueError(f"level must be audit_app.Row or audit_app.Statement, not {level!r}")
        self.level = level.upper() if level else None


class InsertEvent(DatabaseTracker):
    """Record the new row of every INSERT."""

    label = "insert"
    operation = "INSERT"
    row = "NEW"


class UpdateEvent(DatabaseTracker):
    """Record the new row of every UPDATE that changed a tracked field."""

    label = "update"
    operation = "UPDATE"
    row = "NEW"
    # Only effective changes of tracked fields: a no-op save writes nothing.
    # ``condition=None`` records every UPDATE statement's rows.
    default_condition = AnyChange()


class DeleteEvent(DatabaseTracker):
    """Record the old row of every DELETE."""

    label = "delete"
    operation = "DELETE"
    row = "OLD"


def default_trackers() -> list[Tracker]:
    return [InsertEvent(), UpdateEvent(), DeleteEvent()]


def is_masked(field_name: str, patterns: Iterable[str]) -> bool:
    """Whether a field of this name is stored as change markers (``AUDIT_MASKED_FIELDS``
    patterns, matched case-insensitively)."""
    name = field_name.lower()
    return any(fnmatch.fnmatchcase(name, p.lower()) for p in patterns)
