"""Revert an object to an earlier version, or restore a deleted one.

``preview()`` says what a revert would do without writing; ``revert()`` does it in one
transaction and raises a ``RevertError`` subclass, with nothing written, when it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, connections, models, router, transaction
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from audit_app import sql
from audit_app.column_history import field_values, retired_fields
from audit_app.diff import FieldChange, current_data, field_changes, resolve_related, to_python
from audit_app.event_sql import data_sql, load_json, newest_event_sql
from audit_app.exceptions import (
    NothingToRevert,
    RevertConflict,
    RevertError,
    RevertMissingRelated,
    RevertSchemaError,
    RevertUniqueClash,
    RevertValidationError,
)
from audit_app.replicas import primary_reads
from audit_app.runtime import context


@dataclass
class Version:
    """One event row of one event table: the object as it was."""

    event_model: type[models.Model]
    event_id: int
    label: str
    created_at: Any
    data: dict[str, Any]

    @property
    def tracked_model(self) -> type[models.Model]:
        return self.event_model.audit_tracked_model

    @property
    def key(self) -> str:
        return f"{self.event_model._meta.label}:{self.event_id}"

    @property
    def pk(self) -> Any:
        pk_name = self.event_model.audit_fields[0][0]
        pk_field = self.tracked_model._meta.concrete_model._meta.get_field(pk_name)
        return to_python(pk_field, self.data[pk_name])


def load_version(event: Any, using: str = "default") -> Version:
    """The version behind an AuditEvent or a generated event model instance."""
    if isinstance(event, Version):
        return event
    if hasattr(event, "audit_spec"):  # an instance of a generated event model
        return fetch_version(type(event), event.pk, using)
    return fetch_version(apps.get_model(event.event_model), event.event_id, using)


def fetch_version(
    event_model: type[models.Model], event_id: int, using: str = "default"
) -> Version:
    spec = event_model.audit_spec
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT audit_label, audit_created_at, {data_sql(event_model, markers=True)} "
            f"FROM {sql.quote(spec.event_table)} AS e WHERE audit_id = %s",
            [event_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise RevertError(f"Event {event_model._meta.label}:{event_id} does not exist.")
    return Version(event_model, event_id, row[0], row[1], load_json(row[2]))


def _newest_event_id(
    event_model: type[models.Model], pk: Any, using: str, *, at_or_before: Any = None
) -> int | None:
    condition, params = "", [pk]
    if at_or_before is not None:
        condition = f"p.{sql.CREATED_AT} <= %s"
        params.append(at_or_before)
    statement = newest_event_sql(
        event_model, f"p.{sql.EVENT_ID}", alias="p", obj="%s", condition=condition
    )
    with connections[using].cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    return row[0] if row else None


def latest_event_id(event_model: type[models.Model], pk: Any, using: str = "default") -> int | None:
    """The id of the object's newest event (None when it has none)."""
    return _newest_event_id(event_model, pk, using)


@dataclass
class RevertPlan:
    """What a revert would change, and what stands in its way."""

    version: Version
    obj: models.Model | None  # the live object, None when it must be restored
    target: models.Model  # the object as the revert would save it (unsaved)
    fields: list[str]  # field names the revert sets
    changes: list[FieldChange]  # current -> version, for the fields set
    skipped: list[str] = field(default_factory=list)  # masked fields kept (values unknown)
    problems: list[RevertError] = field(default_factory=list)
    # Fields the version holds that the model no longer has, and fields the version
    # did not record (added later): kept as they are, by label.
    removed: list[str] = field(default_factory=list)
    not_recorded: list[str] = field(default_factory=list)

    @property
    def is_restore(self) -> bool:
        return self.obj is None


def _parent_versions(version: Version, using: str) -> list[Version]:
    """For restoring a concrete-inheritance child: its parents' rows as of the version."""
    found = []
    concrete = version.tracked_model._meta.concrete_model
    for parent in concrete._meta.get_parent_list():
        event_model = parent.__dict__.get("audit_event_model")
        if event_model is None:
            raise RevertSchemaError(
                f"Restoring {concrete._meta.verbose_name} {version.pk} needs the history of its "
                f"parent {parent._meta.label}, which is not tracked."
            )
        event_id = _newest_event_id(event_model, version.pk, using, at_or_before=version.created_at)
        if event_id is None:
            raise RevertSchemaError(
                f"No history of {parent._meta.label} {version.pk} to restore the parent row from."
            )
        found.append(fetch_version(event_model, event_id, using))
    return found


def _values(version: Version, names: list[str]) -> dict[str, Any]:
    opts = version.tracked_model._meta.concrete_model._meta
    values = {}
    for name in names:
        try:
            model_field = opts.get_field(name)
        except Exception as exc:
            raise RevertSchemaError(
                f"{opts.label}.{name} no longer exists, so this version cannot be restored "
                "whole; revert the other fields only."
            ) from exc
        raw = version.data.get(name)
        target = model_field.target_field if model_field.is_relation else model_field
        try:
            values[model_field.attname] = None if raw is None else target.to_python(raw)
        except ValidationError as exc:
            raise RevertSchemaError(
                f"The recorded value of {opts.label}.{name} ({raw!r}) no longer fits the field: "
                f"{'; '.join(exc.messages)}. Revert the other fields only."
            ) from exc
    return values


@primary_reads()
def preview(
    event: Any,
    *,
    fields: list[str] | None = None,
    expected_event_id: int | None = None,
    using: str | None = None,
) -> RevertPlan:
    """Work out a revert without writing anything."""
    version = event if isinstance(event, Version) else load_version(event, using or "default")
    model = version.tracked_model
    using = using or router.db_for_write(model)
    masked = version.event_model.audit_masked
    recorded = [name for name, _column in version.event_model.audit_fields[1:]]
    if fields is not None:
        unknown = sorted(set(fields) - set(recorded))
        if unknown:
            raise RevertError(
                f"{model._meta.label} history has no field(s) {unknown}; choose from {recorded}."
            )
    chosen = [
        n
        for n in revertible_fields(version.event_model)
        if (fields is None or n in fields) and n in version.data
    ]
    skipped = [n for n in recorded if n in masked]
    obj = model._default_manager.using(using).filter(pk=version.pk).first()

    if obj is None:
        target = model(**{model._meta.pk.attname: version.pk})
        for parent_version in _parent_versions(version, using):
            parent_names = [n for n, _column in parent_version.event_model.audit_fields[1:]]
            for attname, value in _values(parent_version, parent_names).items():
                setattr(target, attname, value)
        set_names = chosen
        current = None
    else:
        # A second instance: `obj` keeps showing the object as it is now.
        target = model._default_manager.using(using).get(pk=version.pk)
        current = current_data(obj, version.event_model)
        set_names = differing_fields(model, chosen, current, version.data)
    for attname, value in _values(version, set_names).items():
        setattr(target, attname, value)

    wanted = {n: version.data.get(n) for n in set_names}
    changes = field_changes(model, {n: (current or {}).get(n) for n in set_names}, wanted)
    resolve_related(changes, using)
    plan = RevertPlan(version, obj, target, set_names, changes, skipped)
    _schema_notes(plan, recorded)
    plan.problems = _problems(plan, expected_event_id, using)
    return plan


def _schema_notes(plan: RevertPlan, recorded: list[str]) -> None:
    """Name what the revert leaves alone because the schema changed since the version."""
    version = plan.version
    retired = retired_fields(version.event_model)
    gone = [n for n in version.data if n in retired and n not in recorded]
    plan.removed = [capfirst(retired[n].verbose_name) for n in gone]
    opts = version.tracked_model._meta.concrete_model._meta
    plan.not_recorded = [
        capfirst(opts.get_field(n).verbose_name)
        for n in recorded
        if n not in version.data and n not in plan.skipped
    ]


def _retyped_since(version: Version) -> set[str]:
    """Fields whose column type changed after the version was recorded."""
    return {
        v.name
        for v in field_values(version.event_model)
        if v.retired is None
        and any(s.until is not None and version.event_id <= s.until for s in v.segments)
    }


def _field(model: type[models.Model], name: str) -> models.Field | None:
    try:
        return model._meta.concrete_model._meta.get_field(name)
    except Exception:
        return None


def revertible_fields(event_model: type[models.Model]) -> list[str]:
    """The fields a revert can set: every recorded field but the key and masked ones."""
    masked = event_model.audit_masked
    return [name for name, _column in event_model.audit_fields[1:] if name not in masked]


def differing_fields(
    model: type[models.Model], names: list[str], current: dict[str, Any], data: dict[str, Any]
) -> list[str]:
    """The fields among ``names`` whose value in ``data`` (a version) differs from
    ``current`` (the live row, as ``diff.current_data`` reads it)."""
    return [
        n
        for n in names
        if to_python(_field(model, n), current.get(n)) != to_python(_field(model, n), data.get(n))
    ]


def matches_current(
    event_model: type[models.Model], data: dict[str, Any], current: dict[str, Any] | None
) -> bool:
    """Whether reverting to a version with ``data`` would change nothing: the live row
    ``current`` already has every value a revert could set (False when it is gone)."""
    if current is None:
        return False
    model = event_model.audit_tracked_model
    return not differing_fields(model, revertible_fields(event_model), current, data)


def _problems(plan: RevertPlan, expected: int | None, using: str) -> list[RevertError]:
    model = plan.version.tracked_model
    problems: list[RevertError] = []
    if not plan.fields and not plan.is_restore:
        problems.append(
            NothingToRevert(
                _(
                    "{model} “{obj}” already matches this version; there is nothing to revert."
                ).format(model=capfirst(model._meta.verbose_name), obj=plan.obj)
            )
        )
    if expected is not None:
        latest = latest_event_id(plan.version.event_model, plan.version.pk, using)
        if latest != expected:
            problems.append(
                RevertConflict(
                    _(
                        "{model} “{obj}” changed since you looked at it; review its latest "
                        "version and try again."
                    ).format(
                        model=capfirst(model._meta.verbose_name), obj=plan.obj or plan.version.pk
                    )
                )
            )
    for name in plan.fields:
        model_field = model._meta.concrete_model._meta.get_field(name)
        value = getattr(plan.target, model_field.attname)
        if model_field.is_relation and value is not None:
            related = model_field.related_model
            if (
                not related._base_manager.using(using)
                .filter(**{model_field.target_field.attname: value})
                .exists()
            ):
                problems.append(
                    RevertMissingRelated(
                        f"{related._meta.verbose_name.capitalize()} {value} no longer exists, so "
                        f"{model_field.verbose_name} cannot be set back to it. Restore it first, "
                        f"or revert without the field {name!r}."
                    )
                )
    # Validate what the revert sets (everything, for a restore): a field it leaves alone
    # that is invalid today must not block it.
    if plan.is_restore:
        kept = set(plan.skipped)
    else:
        kept = {f.name for f in model._meta.concrete_fields} - set(plan.fields)
    try:
        plan.target.full_clean(exclude=sorted(kept), validate_unique=True)
    except ValidationError as exc:
        problems.append(_validation_problem(model, exc, _retyped_since(plan.version)))
    return problems


def _validation_problem(
    model: type[models.Model], exc: ValidationError, retyped: set[str]
) -> RevertError:
    errors = exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    misfits = sorted(set(errors) & retyped)
    if misfits:
        detail = "; ".join(f"{n}: {' '.join(errors[n])}" for n in misfits)
        name = misfits[0]
        verbose = capfirst(model._meta.get_field(name).verbose_name)
        return RevertSchemaError(
            f"{verbose} ({model._meta.label}.{name}) changed type since this version was "
            f"recorded, and the recorded value no longer fits ({detail}). Untick it to "
            "revert the other fields."
        )
    unique = [
        name
        for name, items in getattr(exc, "error_dict", {}).items()
        if any(e.code in ("unique", "unique_together") for e in items)
    ]
    if unique:
        names = ", ".join(unique)
        return RevertUniqueClash(
            f"The value of {names} in this version is now used by another "
            f"{model._meta.verbose_name}; change that one first or revert without {names}."
        )
    detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
    return RevertValidationError(f"This version no longer passes validation: {detail}", errors)


@primary_reads()
def revert(
    event: Any,
    *,
    fields: list[str] | None = None,
    user: Any = None,
    reason: str = "",
    expected_event_id: int | None = None,
    using: str | None = None,
) -> models.Model:
    """Restore ``event``'s version of its object and return the saved object.

    One transaction; runs ``full_clean()``; raises a ``RevertError`` subclass and writes
    nothing when the revert is not possible. The write is recorded as an event whose
    context names the source event, the user and the reason.
    """
    version = load_version(event, using or "default")
    using = using or router.db_for_write(version.tracked_model)
    with transaction.atomic(using=using):
        # Lock the live row so nobody changes it between our checks and the save.
        version.tracked_model._default_manager.using(using).select_for_update().filter(
            pk=version.pk
        ).first()
        plan = preview(version, fields=fields, expected_event_id=expected_event_id, using=using)
        if plan.problems:
            raise plan.problems[0]
        action = "restored" if plan.is_restore else "reverted"
        metadata: dict[str, Any] = {
            "audit_action": action,
            "audit_source": version.key,
            "reason": reason,
        }
        if user is not None:
            metadata.update(user=user.pk, username=user.get_username())
        try:
            with context(**metadata), transaction.atomic(using=using):
                if plan.is_restore:
                    plan.target.save(force_insert=True, using=using)
                else:
                    update = [version.tracked_model._meta.get_field(n).attname for n in plan.fields]
                    plan.target.save(update_fields=update, using=using)
        except IntegrityError as exc:
            raise RevertError(f"The database refused the revert: {exc}".strip()) from exc
    return plan.target
