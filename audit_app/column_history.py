"""Which column of an event table holds a field's value for which events.

An event table follows its tracked model's fields, but its history must outlive them.
The migration operations of ``audit_app.operations`` keep every recorded value: a removed
field's column stays, renamed, as a *retired* column; a retyped field gets a new column
beside the retired old one; an added field is marked with the newest event id that
could not have recorded it. They write these facts to ``audit_app_columnhistory``.

This module reads them (once per process and database, again after each migration) and
turns them into SQL that picks, for each event, the column holding its value of each
field, and tells which fields an event did not record. A table without such facts reads
exactly as before: one plain column per field.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.utils.module_loading import import_string

from audit_app import sql

HISTORY_TABLE = "audit_app_columnhistory"
# Field options kept to show a retired field's values (its type and labels).
DESCRIBED_OPTIONS = ("max_length", "max_digits", "decimal_places", "choices", "to", "to_field")


@dataclass(frozen=True)
class Segment:
    """A column that holds a field's values for the events with ids in (after, until]."""

    column: str
    after: int | None = None  # events up to this id did not record the field here
    until: int | None = None  # events after this id do not record it here
    as_text: bool = False  # decimals: read as text, as jsonb numbers come back as floats

    def condition(self, alias: str) -> str | None:
        """SQL that holds for the events of this segment (None: every event)."""
        parts = []
        if self.after is not None:
            parts.append(f"{alias}.{sql.EVENT_ID} > {int(self.after)}")
        if self.until is not None:
            parts.append(f"{alias}.{sql.EVENT_ID} <= {int(self.until)}")
        return " AND ".join(parts) or None


@dataclass(frozen=True)
class RetiredField:
    """A field its tracked model no longer has, described as it was last recorded."""

    name: str
    verbose_name: str
    description: dict[str, Any]
    masked: bool = False

    def field(self) -> models.Field:
        """A detached field of the recorded type, to read and show the recorded values."""
        return describe_back(self.name, self.verbose_name, self.description)


@dataclass(frozen=True)
class FieldValues:
    """Where one field's values are, across the schema changes of its event table."""

    name: str
    segments: tuple[Segment, ...]
    masked: bool = False
    retired: RetiredField | None = None  # set when the tracked model lost the field

    @property
    def plain(self) -> bool:
        """One column for every event: the SQL reads the column itself."""
        return len(self.segments) == 1 and self.segments[0].condition("e") is None

    def column_sql(self, alias: str) -> str:
        """The value as stored (same type in every segment: masked markers only)."""
        return self._case(alias, lambda s: f"{alias}.{sql.quote(s.column)}")

    def jsonb_sql(self, alias: str) -> str:
        """The value as jsonb: the segments' columns may differ in type."""

        def read(segment: Segment) -> str:
            column = f"{alias}.{sql.quote(segment.column)}"
            return f"to_jsonb({column}::text)" if segment.as_text else f"to_jsonb({column})"

        return self._case(alias, read)

    def value_sql(self, alias: str) -> str:
        """The value, to compare two events: the column itself where that is enough."""
        if self.masked or self.plain:
            return self.column_sql(alias)
        return self.jsonb_sql(alias)

    def present_sql(self, alias: str) -> str | None:
        """SQL that holds when the event recorded the field (None: always)."""
        conditions = [s.condition(alias) for s in self.segments]
        if any(c is None for c in conditions):
            return None
        return " OR ".join(f"({c})" for c in conditions)

    def _case(self, alias: str, read: Any) -> str:
        if self.plain:
            return read(self.segments[0])
        branches, fallback = [], "NULL"
        for segment in self.segments:
            condition = segment.condition(alias)
            if condition is None:
                fallback = read(segment)
            else:
                branches.append(f"WHEN {condition} THEN {read(segment)}")
        return f"CASE {' '.join(branches)} ELSE {fallback} END"


# --- reading the facts ------------------------------------------------------------------


@dataclass(frozen=True)
class _Fact:
    column: str
    field_name: str
    verbose_name: str
    description: dict[str, Any]
    masked: bool
    recorded_after: int | None
    retired_after: int | None


_facts: dict[str, dict[str, tuple[_Fact, ...]]] = {}
_values: dict[tuple[str, type[models.Model]], tuple[FieldValues, ...]] = {}


def forget() -> None:
    """Drop what was read, so the next read sees the latest migration."""
    _facts.clear()
    _values.clear()


def load(using: str = DEFAULT_DB_ALIAS) -> dict[str, tuple[_Fact, ...]]:
    """The column history of every event table in ``using`` (read once, then kept)."""
    if using not in _facts:
        by_table: dict[str, list[_Fact]] = defaultdict(list)
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [HISTORY_TABLE])
            if cursor.fetchone()[0]:
                cursor.execute(
                    "SELECT event_table, column_name, field_name, verbose_name, description, "
                    "masked, recorded_after, retired_after "
                    f"FROM {HISTORY_TABLE} ORDER BY retired_after NULLS LAST, id"
                )
                for table, *fact in cursor.fetchall():
                    fact[3] = json.loads(fact[3]) if isinstance(fact[3], str) else fact[3]
                    by_table[table].append(_Fact(*fact))
        _facts[using] = {table: tuple(facts) for table, facts in by_table.items()}
    return _facts[using]


def _is_decimal(field: models.Field | None) -> bool:
    return isinstance(field, models.DecimalField)


def field_values(
    event_model: type[models.Model], using: str = DEFAULT_DB_ALIAS
) -> tuple[FieldValues, ...]:
    """Each field an event of ``event_model`` may hold, live fields first (key first),
    then retired ones."""
    key = (using, event_model)
    if key not in _values:
        _values[key] = _field_values(event_model, load(using).get(event_model._meta.db_table, ()))
    return _values[key]


def _field_values(
    event_model: type[models.Model], facts: tuple[_Fact, ...]
) -> tuple[FieldValues, ...]:
    spec = event_model.audit_spec
    opts = event_model.audit_tracked_model._meta.concrete_model._meta
    live_facts = {f.column: f for f in facts if f.retired_after is None}
    retired: dict[str, list[_Fact]] = defaultdict(list)
    for fact in facts:
        if fact.retired_after is not None:
            retired[fact.field_name].append(fact)
    found = []
    for name, column in event_model.audit_fields:
        decimal = _is_decimal(opts.get_field(name))
        added = live_facts.get(column)
        segments = [
            *(_segment(f) for f in retired.pop(name, ())),
            Segment(column, after=added.recorded_after if added else None, as_text=decimal),
        ]
        found.append(FieldValues(name, _ordered(segments), masked=column in spec.masked))
    for name, group in retired.items():
        last = group[-1]
        found.append(
            FieldValues(
                name,
                _ordered([_segment(f) for f in group]),
                masked=last.masked,
                retired=RetiredField(name, last.verbose_name, last.description, last.masked),
            )
        )
    return tuple(found)


def _ordered(segments: list[Segment]) -> tuple[Segment, ...]:
    # Where ranges overlap (a migration unapplied and applied again), the segment that
    # starts later holds the events it covers: it was written for them.
    return tuple(sorted(segments, key=lambda s: -1 if s.after is None else s.after, reverse=True))


def _segment(fact: _Fact) -> Segment:
    as_text = fact.description.get("path", "").endswith("DecimalField")
    return Segment(fact.column, fact.recorded_after, fact.retired_after, as_text=as_text)


def retired_fields(
    event_model: type[models.Model], using: str = DEFAULT_DB_ALIAS
) -> dict[str, RetiredField]:
    """The fields of ``event_model``'s history that its tracked model no longer has."""
    return {v.name: v.retired for v in field_values(event_model, using) if v.retired}


def masked_names(event_model: type[models.Model], using: str = DEFAULT_DB_ALIAS) -> frozenset[str]:
    """Fields whose events hold change markers, not values: live and retired ones."""
    return frozenset(v.name for v in field_values(event_model, using) if v.masked)


# --- describing a field, and reading the description back -------------------------------


def describe(field: models.Field) -> dict[str, Any]:
    """What it takes to show ``field``'s values once the field is gone: its class and the
    options that change how a value reads (JSON)."""
    path, _args, kwargs = field.deconstruct()[1:]
    kept: dict[str, Any] = {}
    for option in DESCRIBED_OPTIONS:
        if option not in kwargs:
            continue
        value = kwargs[option]
        if option == "choices":
            value = [[k, str(v)] for k, v in field.flatchoices]
        elif option == "to":
            value = value if isinstance(value, str) else value._meta.label_lower
        kept[option] = value
    return {"path": path, "kwargs": kept}


def describe_back(name: str, verbose_name: str, description: dict[str, Any]) -> models.Field:
    """A detached field from ``describe()``'s output (a plain text field for a class that
    cannot be imported any more, or a relation to a model that is gone)."""
    kwargs = dict(description.get("kwargs", {}))
    kwargs["verbose_name"] = verbose_name
    field: models.Field
    try:
        cls = import_string(description.get("path", ""))
        if "to" in kwargs:
            kwargs["to"] = apps.get_model(kwargs["to"])
            kwargs.setdefault("on_delete", models.DO_NOTHING)
        field = cls(**kwargs)
    except (ImportError, LookupError, TypeError, ValueError):
        field = models.TextField(verbose_name=verbose_name)
    field.set_attributes_from_name(name)
    return field
