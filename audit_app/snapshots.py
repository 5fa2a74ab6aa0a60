"""Baseline and manual events written in set-based SQL from the live rows."""

from __future__ import annotations

from typing import Any

from django.db import connections, models, transaction

from audit_app import sql
from audit_app.exceptions import TrackingError
from audit_app.registry import event_model_of
from audit_app.trackers import check_label


def _snapshot(
    queryset: models.QuerySet, *, label: str, after: Any = None, limit: int | None = None
) -> tuple[int, Any, int | None]:
    """Insert one event per row of ``queryset`` (pk order, keyset-paginated).

    Returns (rows written, largest pk written, largest event id written).
    """
    check_label(label, TrackingError)
    spec = event_model_of(queryset.model).audit_spec
    pk = f"{sql.NEW}.{sql.quote(spec.pk_column)}"
    conditions, params = ["TRUE"], []
    if queryset.query.where:
        inner, inner_params = queryset.order_by().values("pk").query.sql_with_params()
        conditions.append(f"{pk} IN ({inner})")
        params.extend(inner_params)
    if after is not None:
        conditions.append(f"{pk} > %s")
        params.append(after)
    tail = " AND ".join(conditions) + f" ORDER BY {pk}"
    if limit:
        tail += f" LIMIT {int(limit)}"
    statement = (
        f"WITH written AS ({sql.snapshot_sql(spec, label=label, where_sql=tail)}"
        f" RETURNING {sql.quote(spec.pk_column)}, {sql.EVENT_ID})"
        # max() is undefined for some key types (uuid): take the last key by ordering.
        f" SELECT count(*), (SELECT {sql.quote(spec.pk_column)} FROM written ORDER BY 1 DESC"
        f" LIMIT 1), max({sql.EVENT_ID}) FROM written"
    )
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()


def backfill(
    model_or_queryset: type[models.Model] | models.QuerySet,
    *,
    label: str = "snapshot",
    batch_size: int = 50_000,
) -> int:
    """Write one ``label`` event per existing row, in batches; return how many."""
    queryset = (
        model_or_queryset._default_manager.all()
        if isinstance(model_or_queryset, type)
        else model_or_queryset
    )
    total, after = 0, None
    while True:
        with transaction.atomic(using=queryset.db):
            count, after_batch, _ = _snapshot(queryset, label=label, after=after, limit=batch_size)
        total += count
        if count < batch_size:
            return total
        after = after_batch


def create_event(obj: models.Model, *, label: str) -> models.Model:
    """Record the stored state of ``obj`` as an event labelled ``label``."""
    model = type(obj)
    queryset = model._default_manager.using(obj._state.db or "default").filter(pk=obj.pk)
    count, _, event_id = _snapshot(queryset, label=label)
    if not count:
        raise TrackingError(
            f"{model._meta.label} {obj.pk!r} is not in the database; save it before "
            "recording an event for it."
        )
    return event_model_of(model)._default_manager.using(queryset.db).get(pk=event_id)
