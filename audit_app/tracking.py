"""``audit_app.track()``: generate an event model for a tracked model and its triggers."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pgtrigger
from django.apps import apps
from django.db import models

from audit_app import conf, sql
from audit_app import partition_sql as psql
from audit_app.models import BaseEvent
from audit_app.trackers import (
    DatabaseTracker,
    Tracker,
    check_label,
    default_trackers,
    is_masked,
    render_condition,
)
from audit_app.triggers import AppendOnly, CaptureTrigger

M = TypeVar("M", bound=type[models.Model])


class Unset:
    """The type of ``UNSET``: an option left to its setting (None is a value)."""


UNSET = Unset()

_AUTO_TO_INT = {
    models.BigAutoField: models.BigIntegerField,
    models.SmallAutoField: models.SmallIntegerField,
    models.AutoField: models.IntegerField,
}
# Field options that describe the live table's constraints or defaults, not history.
_DROPPED_KWARGS = (
    "primary_key",
    "unique",
    "unique_for_date",
    "unique_for_month",
    "unique_for_year",
    "db_default",
    "auto_now",
    "auto_now_add",
    "parent_link",
    "related_query_name",
    "limit_choices_to",
    "db_comment",
    # Events are written by triggers: defaults never apply, and a default would fill the
    # column of events written before the field existed as if they had recorded it.
    "default",
)


def track(
    *trackers: Tracker,
    fields: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    level: str | None = None,
    append_only: bool | None = None,
    model_name: str | None = None,
    related_name: str = "audit_events",
    masked: Iterable[str] | None = None,
    constrain_obj: bool | None = None,
    follow: Sequence[str] = (),
    partition: str | Unset | None = UNSET,
) -> Callable[[M], M]:
    """Record changes of the decorated model in a generated event model.

    With no trackers, inserts, effective updates and deletes are recorded. ``follow``
    names relations (reverse foreign keys, many-to-many fields with a tracked through
    table) whose rows' history belongs to the object's history (``audit_app.following``).
    ``partition`` ("day", "week", "month" or None; default ``AUDIT_PARTITION``)
    range-partitions the event table on the event time (``audit_app.partitioning``).
    """
    if isinstance(follow, str) or not all(isinstance(name, str) for name in follow):
        raise TypeError(f"track(follow=...) takes a list of relation names, not {follow!r}.")

    def decorator(model: M) -> M:
        create_event_model(
            model,
            *trackers,
            fields=fields,
            exclude=exclude,
            level=level,
            append_only=append_only,
            model_name=model_name,
            related_name=related_name,
            masked=masked,
            constrain_obj=constrain_obj,
            partition=partition,
        )
        # Resolved once the app registry is ready: reverse relations do not exist yet.
        model.audit_event_model.audit_follow_names = tuple(follow)
        return model

    return decorator


def tracked_fields(
    model: type[models.Model], fields: Sequence[str] | None, exclude: Sequence[str] | None
) -> list[models.Field]:
    """The columns of the model's own table that its events copy (primary key first)."""
    concrete = model._meta.concrete_model
    candidates = [
        f for f in concrete._meta.local_concrete_fields if not getattr(f, "generated", False)
    ]
    names = {f.name for f in candidates} | {f.attname for f in candidates}
    for option, values in (("fields", fields), ("exclude", exclude)):
        unknown = sorted(set(values or ()) - names)
        if unknown:
            raise ValueError(
                f"track({option}=...) on {model._meta.label} names {unknown}, which are not "
                f"concrete fields of its table; choose from {sorted(f.name for f in candidates)}."
            )
    pk = concrete._meta.pk
    chosen = []
    for f in candidates:
        if f is pk:
            continue
        if fields is not None and f.name not in fields and f.attname not in fields:
            continue
        if exclude and (f.name in exclude or f.attname in exclude):
            continue
        chosen.append(f)
    return [pk, *chosen]


def copy_field(field: models.Field, *, masked: bool) -> models.Field:
    """A history copy of ``field``: same type and column, no constraints or indexes.

    Always nullable: events written before a field existed hold no value for it.
    """
    if masked:
        # Masked values are stored as change markers (see sql.masked_marker_sql).
        return models.TextField(null=True, verbose_name=field.verbose_name, db_column=field.column)
    if isinstance(field, models.ForeignKey):
        # Built by hand: deconstruct() of a relation needs the app registry ready, and
        # track() runs while models are still loading.
        return models.ForeignKey(
            field.remote_field.model,
            to_field=field.remote_field.field_name if field.to_fields[0] else None,
            on_delete=models.DO_NOTHING,
            db_constraint=False,
            db_index=False,
            related_name="+",
            null=True,
            blank=field.blank,
            verbose_name=field.verbose_name,
            db_column=field.column,
        )
    _, _, args, kwargs = field.deconstruct()
    for key in _DROPPED_KWARGS:
        kwargs.pop(key, None)
    kwargs["db_index"] = False
    kwargs["db_column"] = field.column
    kwargs["null"] = True
    cls: type[models.Field] = field.__class__
    for auto, plain in _AUTO_TO_INT.items():
        if isinstance(field, auto):
            cls = plain
            break
    return cls(*args, **kwargs)


def _index_name(table: str, what: str) -> str:
    digest = hashlib.md5(f"{table}:{what}".encode(), usedforsecurity=False).hexdigest()[:10]
    return f"audit_{digest}_{what}"[:30]


def _unique_related_name(model: type[models.Model], related_name: str) -> str:
    # A concrete child inherits its parents' reverse accessors; reusing a tracked
    # parent's name would clash (fields.E304), so the child gets its own.
    for parent in model._meta.get_parent_list():
        if hasattr(parent, related_name):
            return f"audit_{model._meta.model_name}_events"
    return related_name


@dataclass(frozen=True)
class EventModelPlan:
    """What ``track()``'s options resolve to for one model: settings applied, fields chosen."""

    trackers: tuple[Tracker, ...]
    level: str
    append_only: bool
    constrain_obj: bool
    copied: tuple[models.Field, ...]  # the tracked model's fields the events copy, pk first
    masked: frozenset[str]  # names of copied fields stored as change markers
    event_name: str
    db_table: str
    related_name: str
    partition: str | None = None  # the event table's partition interval


def check_trackable(model: type[models.Model]) -> None:
    """Refuse models whose events could not be recorded, saying why."""
    opts = model._meta
    if opts.abstract:
        raise TypeError(f"{opts.label} is abstract; track a concrete or proxy model.")
    if getattr(opts, "pk", None) is None or opts.pk.__class__.__name__ == "CompositePrimaryKey":
        raise TypeError(f"{opts.label} has a composite primary key, which is not supported.")
    if "audit_event_model" in model.__dict__:
        raise TypeError(f"{opts.label} is already tracked by {model.audit_event_model.__name__}.")
    if opts.app_config is None or opts.app_config.name.startswith("django."):
        raise TypeError(
            f"{opts.label} lives in a Django app; track a proxy of it in one of your apps."
        )


def _check_trackers(model: type[models.Model], trackers: Sequence[Tracker]) -> None:
    labels = [check_label(t.label) for t in trackers]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Tracker labels of {model._meta.label} must be unique, got {labels}.")


def _check_constrain_obj(
    model: type[models.Model], trackers: Sequence[Tracker], *, append_only: bool
) -> None:
    label = model._meta.label
    if any(getattr(t, "operation", "") == "DELETE" for t in trackers):
        raise ValueError(
            f"{label}: a constrained object reference deletes events with their object, "
            "so a delete event would point at a missing row. Drop DeleteEvent or keep the "
            "reference unconstrained (constrain_obj=False)."
        )
    if append_only:
        raise ValueError(
            f"{label}: constrain_obj cascades deletes into an append-only event table, "
            "which refuses them. Choose one."
        )


def plan_event_model(
    model: type[models.Model],
    trackers: Sequence[Tracker],
    *,
    fields: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    level: str | None = None,
    append_only: bool | None = None,
    model_name: str | None = None,
    related_name: str = "audit_events",
    masked: Iterable[str] | None = None,
    constrain_obj: bool | None = None,
    partition: str | Unset | None = UNSET,
) -> EventModelPlan:
    """Resolve ``track()``'s options against the settings and check them together."""
    trackers = tuple(trackers) or tuple(default_trackers())
    _check_trackers(model, trackers)
    constrain_obj = conf.constrain_obj() if constrain_obj is None else constrain_obj
    if append_only is None:
        # A constrained reference deletes events with their object: the setting's
        # append-only default gives way to it; an explicit append_only=True does not.
        append_only = conf.append_only() and not constrain_obj
    if constrain_obj:
        _check_constrain_obj(model, trackers, append_only=append_only)
    copied = tracked_fields(model, fields, exclude)
    patterns = conf.masked_fields() if masked is None else tuple(masked)
    event_name = model_name or f"{model.__name__}Event"
    app_label = model._meta.app_label
    if event_name.lower() in apps.all_models[app_label]:
        raise ValueError(f"{app_label}.{event_name} already exists; pass model_name=...")
    return EventModelPlan(
        trackers=trackers,
        level=(level or conf.level()).upper(),
        append_only=append_only,
        constrain_obj=constrain_obj,
        copied=tuple(copied),
        masked=frozenset(f.name for f in copied[1:] if is_masked(f.name, patterns)),
        event_name=event_name,
        db_table=f"{app_label}_{event_name.lower()}",
        related_name=_unique_related_name(model, related_name),
        partition=psql.check_interval(conf.partition() if partition is UNSET else partition),
    )


def _event_meta(model: type[models.Model], db_table: str, partition: str | None) -> type:
    """The generated event model's Meta: its table and the indexes our reads need.

    A partitioned table says so in its comment, which the migration state keeps:
    ``makemigrations`` sees the change and writes ``PartitionEventTable``.
    """
    opts = model._meta
    return type(
        "Meta",
        (),
        {
            "app_label": opts.app_label,
            "db_table": db_table,
            "ordering": ("audit_id",),
            "indexes": [
                models.Index(
                    # One object's history, newest first, and its previous event
                    # (no audit_id: see the user index below).
                    fields=["audit_obj", "audit_created_at"],
                    name=_index_name(db_table, "obj"),
                ),
                models.Index(
                    fields=["audit_created_at", "audit_id"], name=_index_name(db_table, "ts")
                ),
                models.Index(fields=["audit_context"], name=_index_name(db_table, "ctx")),
                models.Index(
                    # One user's events, newest first: a merge of per-table scans
                    # (ties on the time are sorted on the page). Without audit_id,
                    # PostgreSQL keeps pages full when each user's events arrive in
                    # time order: 31 MiB per 1M events instead of 69.
                    fields=["audit_user", "audit_created_at"],
                    name=_index_name(db_table, "usr"),
                    condition=models.Q(audit_user__isnull=False),
                ),
            ],
            "db_table_comment": psql.table_comment(partition),
            "verbose_name": f"{opts.verbose_name} event",
            "verbose_name_plural": f"{opts.verbose_name} events",
        },
    )


def build_event_model(model: type[models.Model], plan: EventModelPlan) -> type[models.Model]:
    """Create (and so register) the event model class that ``plan`` describes."""
    pk = plan.copied[0]
    attrs: dict[str, Any] = {
        "__module__": model.__module__,
        "__qualname__": plan.event_name,
        "audit_obj": models.ForeignKey(
            model,
            on_delete=models.CASCADE if plan.constrain_obj else models.DO_NOTHING,
            db_constraint=plan.constrain_obj,
            db_column=pk.column,
            db_index=False,
            related_name=plan.related_name,
        ),
        "Meta": _event_meta(model, plan.db_table, plan.partition),
    }
    for f in plan.copied[1:]:
        if f.name in attrs or f.name.startswith("audit_"):
            raise ValueError(
                f"{model._meta.label}.{f.name} clashes with an event system field name."
            )
        attrs[f.name] = copy_field(f, masked=f.name in plan.masked)
    event_model = type(plan.event_name, (BaseEvent,), attrs)

    event_model.audit_tracked_model = model
    event_model.audit_spec = sql.EventSpec(
        table=model._meta.db_table,
        event_table=plan.db_table,
        pk_column=pk.column,
        columns=tuple(f.column for f in plan.copied),
        masked=frozenset(f.column for f in plan.copied if f.name in plan.masked),
    )
    event_model.audit_trackers = plan.trackers
    event_model.audit_masked = plan.masked
    event_model.audit_append_only = plan.append_only
    event_model.audit_partition = plan.partition
    # (field name, column) of each copied field of the tracked model, primary key first.
    event_model.audit_fields = tuple((f.name, f.column) for f in plan.copied)
    return event_model


def register_triggers(
    model: type[models.Model], event_model: type[models.Model], plan: EventModelPlan
) -> None:
    """Register the capture triggers on ``model`` (and append-only on its event model)."""
    spec = event_model.audit_spec
    for tracker in plan.trackers:
        if not isinstance(tracker, DatabaseTracker):
            continue
        trigger = CaptureTrigger(
            name=f"audit_{tracker.label}",
            spec=spec,
            label=tracker.label,
            operation=tracker.operation,
            row=tracker.row,
            level=(tracker.level or plan.level),
            condition_sql=render_condition(tracker.condition, model, spec.columns),
        )
        pgtrigger.register(trigger)(model)
    if plan.append_only:
        pgtrigger.register(AppendOnly())(event_model)


def create_event_model(
    model: type[models.Model], *trackers: Tracker, **options: Any
) -> type[models.Model]:
    """Build and register the event model of ``model`` and install its triggers.

    ``options`` are ``track()``'s keyword arguments.
    """
    check_trackable(model)
    plan = plan_event_model(model, trackers, **options)
    event_model = build_event_model(model, plan)
    model.audit_event_model = event_model
    register_triggers(model, event_model, plan)
    # Make the class importable where makemigrations looks for it.
    setattr(sys.modules[model.__module__], plan.event_name, event_model)
    return event_model
