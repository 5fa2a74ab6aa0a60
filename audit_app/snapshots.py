"""Baseline and manual events written in set-based SQL from the live rows."""

from __future__ import annotations

from typing import Any, NamedTuple

from django.db import connections, models, transaction

from audit_app import sql
from audit_app.exceptions import TrackingError
from audit_app.registry import event_model_of
from audit_app.trackers import check_label


class _Batch(NamedTuple):
    read: int
    written: int
    last_key: Any
    last_event_id: int | None


def _snapshot(
    queryset: models.QuerySet,
    *,
    label: str,
    after: Any = None,
    limit: int | None = None,
    skip_with_history: bool = False,
) -> _Batch:
    """Insert one event per row of ``queryset`` after the key ``after`` (pk order, at
    most ``limit`` rows), or per row without history; say what was read and written."""
    check_label(label, TrackingError)
    spec = event_model_of(queryset.model).audit_spec
    pk = f"{sql.NEW}.{sql.quote(spec.pk_column)}"
    conditions, params = [], []
    if queryset.query.where:
        inner, inner_params = queryset.order_by().values("pk").query.sql_with_params()
        conditions.append(f"{pk} IN ({inner})")
        params.extend(inner_params)
    if after is not None:
        conditions.append(f"{pk} > %s")
        params.append(after)
    statement = sql.snapshot_sql(
        spec,
        label=label,
        where_sql=" AND ".join(conditions) or "TRUE",
        limit=limit,
        skip_with_history=skip_with_history,
    )
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(statement, params)
        return _Batch(*cursor.fetchone())


class Backfilled(int):
    """The number of events a backfill wrote; ``skipped`` counts the rows it left alone
    because their object already had an event."""

    skipped: int

    def __new__(cls, written: int, skipped: int = 0) -> Backfilled:
        result = super().__new__(cls, written)
        result.skipped = skipped
        return result

    @property
    def written(self) -> int:
        return int(self)

    def __str__(self) -> str:
        return str(int(self))

    def __repr__(self) -> str:
        return f"Backfilled(written={int(self)}, skipped={self.skipped})"


def backfill(
    model_or_queryset: type[models.Model] | models.QuerySet,
    *,
    label: str = "snapshot",
    batch_size: int = 50_000,
    force: bool = False,
) -> Backfilled:
    """Write one ``label`` event per existing row that has none yet, in batches.

    A row whose object already has an event in the model's own event table (any label:
    its insert, an earlier backfill) is skipped, so running a backfill again writes
    nothing new; ``force=True`` writes an event for every row. Returns the number of
    events written, an int whose ``skipped`` attribute counts the rows skipped.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}.")
    queryset = (
        model_or_queryset._default_manager.all()
        if isinstance(model_or_queryset, type)
        else model_or_queryset
    )
    written = skipped = 0
    after = None
    while True:
        with transaction.atomic(using=queryset.db):
            batch = _snapshot(
                queryset,
                label=label,
                after=after,
                limit=batch_size,
                skip_with_history=not force,
            )
        written += batch.written
        skipped += batch.read - batch.written
        if batch.read < batch_size:
            return Backfilled(written, skipped)
        after = batch.last_key


def create_event(obj: models.Model, *, label: str) -> models.Model:
    """Record the stored state of ``obj`` as an event labelled ``label``."""
    model = type(obj)
    queryset = model._default_manager.using(obj._state.db or "default").filter(pk=obj.pk)
    batch = _snapshot(queryset, label=label)
    if not batch.written:
        raise TrackingError(
            f"{model._meta.label} {obj.pk!r} is not in the database; save it before "
            "recording an event for it."
        )
    return event_model_of(model)._default_manager.using(queryset.db).get(pk=batch.last_event_id)
