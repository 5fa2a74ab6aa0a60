"""SQL over event tables: their rows as data, an object's previous event, the union.

Text generation from a generated event model's declaration (``audit_spec``,
``audit_fields``) and its column history (``column_history``, read once per process):
no other query runs here. ``AuditEvent`` (``query.py``), the diff engine,
revert and export all read event tables through these builders, so that "the previous
event of an object" or "an event's data as JSON" has one definition.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import apps
from django.db import models
from django.utils import timezone

from audit_app import partition_sql as psql
from audit_app import sql
from audit_app.column_history import field_values
from audit_app.registry import event_models

AGGREGATE_TABLE = "audit_app_auditevent"
# Masked values are never shown: events carry this instead (their markers stay in SQL).
MASKED = "••••••"
_JSONB_MAX_PAIRS = 50  # jsonb_build_object takes at most 100 arguments

#: SQL text and its parameters: a filter pushed into one branch, or a whole statement.
SqlFragment = tuple[str, tuple[Any, ...]]


def load_json(value: Any) -> Any:
    """Decode jsonb read through a raw cursor (Django's backend hands it over as text)."""
    return json.loads(value) if isinstance(value, str) else value


def tracked_field(event_model: type[models.Model], name: str) -> models.Field:
    return event_model.audit_tracked_model._meta.concrete_model._meta.get_field(name)


def data_sql(
    event_model: type[models.Model], alias: str = "e", *, live: bool = False, markers: bool = False
) -> str:
    """A jsonb object of the tracked values of an event row, keyed by field name.

    Masked fields read as ``MASKED`` unless ``markers`` asks for their change markers
    (for diffs, never for display). With ``live=True`` the alias is a row of the tracked
    table itself, read into the same image.

    An event's object also holds the fields its tracked model has lost (retired), and
    leaves out the fields the event did not record (added to the model later): see
    ``audit_app.column_history``.
    """
    if live:
        return _live_data_sql(event_model, alias)
    always, optional = [], []
    for values in field_values(event_model):
        if values.masked:
            marker = values.column_sql(alias)
            value = (
                marker
                if markers
                else f"CASE WHEN {marker} IS NULL THEN NULL ELSE {sql.literal(MASKED)} END"
            )
        elif values.plain:
            column = f"{alias}.{sql.quote(values.segments[0].column)}"
            value = f"{column}::text" if values.segments[0].as_text else column
        else:
            value = values.jsonb_sql(alias)
        pair = f"{sql.literal(values.name)}, {value}"
        present = values.present_sql(alias)
        if present is None:
            always.append(pair)
        else:
            optional.append(f"CASE WHEN {present} THEN jsonb_build_object({pair}) END")
    parts = [_jsonb_object(always)] if always else ["'{}'::jsonb"]
    # jsonb || NULL is NULL: an unrecorded field adds an empty object instead.
    parts += [f"coalesce({o}, '{{}}'::jsonb)" for o in optional]
    return " || ".join(parts)


def _live_data_sql(event_model: type[models.Model], alias: str) -> str:
    spec = event_model.audit_spec
    pairs = []
    for name, column in event_model.audit_fields:
        value = f"{alias}.{sql.quote(column)}"
        if column in spec.masked:
            value = sql.masked_marker_sql(value, f"{alias}.{sql.quote(spec.pk_column)}")
        elif isinstance(tracked_field(event_model, name), models.DecimalField):
            value += "::text"  # jsonb numbers would come back as floats
        pairs.append(f"{sql.literal(name)}, {value}")
    return _jsonb_object(pairs)


def markers_sql(event_model: type[models.Model], alias: str = "e") -> str:
    """A jsonb object of the change markers of masked fields (NULL when none)."""
    pairs = [
        f"{sql.literal(v.name)}, {v.column_sql(alias)}"
        for v in field_values(event_model)
        if v.masked
    ]
    return _jsonb_object(pairs) if pairs else "NULL::jsonb"


def _jsonb_object(pairs: list[str]) -> str:
    chunks = [pairs[i : i + _JSONB_MAX_PAIRS] for i in range(0, len(pairs), _JSONB_MAX_PAIRS)]
    return " || ".join(f"jsonb_build_object({', '.join(chunk)})" for chunk in chunks)


def newest_event_sql(
    event_model: type[models.Model], select: str, *, alias: str, obj: str, condition: str = ""
) -> str:
    """SELECT ``select`` from the newest event (``alias``) of the object whose key is the
    SQL ``obj``, among its events matching ``condition``.

    "Newest" is the order of the (object, created_at) index, ties broken by event id:
    the index returns the row without a sort.
    """
    spec = event_model.audit_spec
    where = f"{alias}.{sql.quote(spec.pk_column)} = {obj}"
    if condition:
        where += f" AND {condition}"
    return (
        f"SELECT {select} FROM {sql.quote(spec.event_table)} AS {alias} WHERE {where} "
        f"ORDER BY {alias}.{sql.CREATED_AT} DESC, {alias}.{sql.EVENT_ID} DESC LIMIT 1"
    )


def _position(alias: str) -> str:
    # An event's place in its object's history: the order of the object index.
    return f"({alias}.{sql.CREATED_AT}, {alias}.{sql.EVENT_ID})"


def previous_event_sql(
    event_model: type[models.Model], select: str, *, alias: str = "p", of: str = "e"
) -> str:
    """Scalar subquery: ``select`` over the same object's event before the event ``of``
    (NULL for an object's first event).

    On an event table declared partitioned (``audit_partition``) the lookup reads the
    partitions newest first and stops at the first that has one (see
    ``_partitioned_previous_sql``).
    """
    pk = sql.quote(event_model.audit_spec.pk_column)
    before = f"{_position(alias)} < {_position(of)}"
    interval = getattr(event_model, "audit_partition", None)
    if interval:
        return _partitioned_previous_sql(event_model, select, alias, of, interval)
    subquery = newest_event_sql(
        event_model, select, alias=alias, obj=f"{of}.{pk}", condition=before
    )
    return f"({subquery})"


def _partitioned_previous_sql(
    event_model: type[models.Model], select: str, alias: str, of: str, interval: str
) -> str:
    """The previous event, read from one partition after another, newest first.

    Bounded by the event's own time only, PostgreSQL keeps the default partition in
    the plan (any time may be in it), so it merges the object index of every earlier
    partition and opens each of them before it returns one row: each lookup would cost
    as much as there are partitions. Below a constant bound that the partitions cover
    (the start of the next interval: partitions are made ahead), the default partition
    is pruned when the statement is planned and the partitions are read in order, so
    the lookup stops at the first one holding an earlier event. Events at or after the
    bound (clock skew, a partition missing) come first, from their own step. The steps
    do not overlap and go back in time: the row is the one a single lookup returns.
    """
    pk = sql.quote(event_model.audit_spec.pk_column)
    bound = psql.step(psql.floor(timezone.now(), interval), interval)
    column = f"{alias}.{sql.CREATED_AT}"
    earlier = f"{column} <= {of}.{sql.CREATED_AT} AND {_position(alias)} < {_position(of)}"
    limit = f"{sql.literal(bound.isoformat())}::timestamptz"
    # The first step runs only for an event at or after the bound (a one-time filter).
    steps = (
        f"{of}.{sql.CREATED_AT} >= {limit} AND {column} >= {limit} AND {earlier}",
        f"{column} < {limit} AND {earlier}",
    )
    union = " UNION ALL ".join(
        "("
        + newest_event_sql(
            event_model, f"{select} AS found", alias=alias, obj=f"{of}.{pk}", condition=step
        )
        + ")"
        for step in steps
    )
    return f"(SELECT steps.found FROM ({union}) AS steps LIMIT 1)"


def previous_sql(event_model: type[models.Model], alias: str = "e") -> str:
    """Scalar subquery: the data (with markers) of the same object's previous event."""
    return previous_event_sql(event_model, data_sql(event_model, "p", markers=True), of=alias)


def branch_sql(
    event_model: type[models.Model], filters: Sequence[SqlFragment] = (), *, extra_columns: str = ""
) -> SqlFragment:
    """One UNION ALL branch: an event table in the shape of AuditEvent.

    ``extra_columns`` (``", <expr> AS <name>"``, the event row aliased ``e``) adds columns
    for one caller, such as the export's diff. They are not part of AuditEvent because a
    branch computes its columns for every row it emits, before filters applied above it.
    """
    spec = event_model.audit_spec
    label = event_model._meta.label
    tracked = event_model.audit_tracked_model._meta.label
    # No "WHERE TRUE" filler: a branch with a WHERE clause of its own is planned on
    # its own, so the newest-first page could no longer merge the per-table indexes.
    where = " AND ".join(f"({f})" for f, _ in filters)
    params = tuple(p for _, ps in filters for p in ps)
    return (
        f"SELECT {sql.literal(event_model._meta.label_lower + ':')} || e.audit_id AS id, "
        f"{sql.literal(label)}::text AS event_model, e.audit_id AS event_id, "
        f"{sql.literal(tracked)}::text AS obj_model, "
        f"e.{sql.quote(spec.pk_column)}::text AS obj_id, e.audit_label::text AS label, "
        f"e.audit_created_at AS created_at, e.audit_context_id AS context_id, "
        f"e.{sql.USER} AS user_id, "
        f"{data_sql(event_model)} AS data, {markers_sql(event_model)} AS masked_markers"
        + extra_columns
        + f" FROM {sql.quote(spec.event_table)} AS e"
        + (f" WHERE {where}" if where else ""),
        params,
    )


# Keeps the SQL valid when no event table is in scope.
EMPTY_COLUMNS = (
    "NULL::text AS id, NULL::text AS event_model, NULL::bigint AS event_id, "
    "NULL::text AS obj_model, NULL::text AS obj_id, NULL::text AS label, "
    "NULL::timestamptz AS created_at, NULL::bigint AS context_id, "
    f"(NULL::{sql.quote(sql.CONTEXT_TABLE)}).user_id AS user_id, NULL::jsonb AS data, "
    "NULL::jsonb AS masked_markers"
)


def union_sql(
    scope: dict[str, tuple[SqlFragment, ...]] | None,
    *,
    extra_columns: Callable[[type[models.Model]], str] | None = None,
) -> SqlFragment | None:
    """The UNION ALL of the branches in ``scope`` (None: every event table), or None
    when no event table is in scope. ``extra_columns`` gives each branch's extra columns
    (see ``branch_sql``)."""
    if scope is None:
        chosen = [(m, ()) for m in event_models()]
    else:
        chosen = [(apps.get_model(label), filters) for label, filters in scope.items()]
    parts, params = [], []
    for event_model, filters in chosen:
        extra = extra_columns(event_model) if extra_columns else ""
        branch, branch_params = branch_sql(event_model, filters, extra_columns=extra)
        parts.append(branch)
        params.extend(branch_params)
    return (" UNION ALL ".join(parts), tuple(params)) if parts else None
