"""SQL filters that pick a followed relation's events out of the child's event table.

A row belongs to an object's history while its foreign key points at the object: its
events with that key (its insert, its changes, its delete, which records the old row),
and the one event that moved it to another parent (its previous event had the key).
The first part reads the follow index (on the foreign key); the second starts from the
rows that ever had the key and reads only their events that no longer have it.

Text generation only, for ``AuditEventQuerySet.tracks(follow=...)``.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from audit_app import sql
from audit_app.event_sql import SqlFragment, previous_event_sql


def _pk(event_model: type[models.Model]) -> str:
    return sql.quote(event_model.audit_spec.pk_column)


def belonged_sql(event_model: type[models.Model], fk_column: str) -> str:
    """A subquery: the keys of the child rows that ever pointed at one of ``%s`` (an array)."""
    table = sql.quote(event_model.audit_spec.event_table)
    return f"SELECT b.{_pk(event_model)} FROM {table} AS b WHERE b.{sql.quote(fk_column)} = ANY(%s)"


def child_filter_sql(
    event_model: type[models.Model], fk_column: str, keys: list[Any]
) -> SqlFragment:
    """Events of the child table while its rows pointed at ``keys``, and the events that
    moved them away."""
    fk = sql.quote(fk_column)
    table = sql.quote(event_model.audit_spec.event_table)
    previous_fk = previous_event_sql(event_model, f"p.{fk}", of="n")
    # Only an event that points elsewhere can be the move: the previous event is
    # probed for those alone (the rows' other events would cost a probe each).
    moved = (
        f"SELECT n.audit_id FROM {table} AS n WHERE n.{_pk(event_model)} IN "
        f"({belonged_sql(event_model, fk_column)}) AND "
        f"(n.{fk} IS NULL OR NOT n.{fk} = ANY(%s)) AND {previous_fk} = ANY(%s)"
    )
    # "= ANY(ARRAY(...))": an index condition on the event id, so PostgreSQL ORs it
    # with the follow index instead of filtering every event of the table.
    return (
        f"e.{fk} = ANY(%s) OR e.audit_id = ANY(ARRAY({moved}))",
        (keys, keys, keys, keys),
    )


def subclass_filter_sql(
    event_model: type[models.Model],
    holder_event_model: type[models.Model],
    fk_column: str,
    keys: list[Any],
) -> SqlFragment:
    """Events of a concrete-inheritance child table of the followed rows: its own
    columns, recorded under the same key as the rows that ever pointed at ``keys``."""
    return (
        f"e.{_pk(event_model)} = ANY(ARRAY({belonged_sql(holder_event_model, fk_column)}))",
        (keys,),
    )
