"""Followed relations: the rows whose history belongs to an object's history.

``@audit_app.track(follow=["items"])`` names reverse foreign keys (inline children) and
many-to-many fields whose through table is tracked. Reverse relations do not exist
while models are being declared, so the names are resolved once the app registry is
ready (``resolve_all``, from ``AuditAppConfig.ready``). A name that cannot be followed
is kept as a problem for the system check (``audit_app.checks``) to report.

Resolving a follow also adds an index on the foreign key's column to the child's event
table (the "while it belonged" part of a followed history reads it), so the index
appears in the event model's state before migrations read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.text import capfirst

from audit_app.registry import tracked_models

CHILDREN = "children"  # a reverse foreign key: rows that belong to the object
LINKS = "links"  # a many-to-many field: rows of its through table


@dataclass(frozen=True)
class Followed:
    """One followed relation of a tracked model, resolved against the app registry."""

    name: str  # the relation's name on the followed-from model ("items", "tags")
    label: str  # how the admin labels it ("Items", "Tags")
    kind: str  # CHILDREN or LINKS
    event_model: type[models.Model]  # the event model of the child (or through) table
    fk_name: str  # the field of the child (or through) row pointing at the object
    fk_column: str
    target_name: str = ""  # LINKS: the through row's field pointing at the linked row

    @property
    def child_model(self) -> type[models.Model]:
        return self.event_model.audit_tracked_model


@dataclass(frozen=True)
class FollowProblem:
    """A follow name that cannot be resolved, with what is wrong and the fix."""

    model: type[models.Model]
    name: str
    kind: str  # "unknown", "not_followable" or "untracked"
    message: str
    hint: str


def _event_model_holding(model: type[models.Model], column: str) -> type[models.Model] | None:
    """The event model recording ``column`` of ``model``'s table (tracked directly or
    through a proxy), or None."""
    concrete = model._meta.concrete_model
    for tracked in tracked_models():
        event_model = tracked.audit_event_model
        if tracked._meta.concrete_model is concrete and column in event_model.audit_spec.columns:
            return event_model
    return None


def resolve_name(model: type[models.Model], name: str) -> Followed | FollowProblem:
    label = model._meta.label
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return FollowProblem(
            model,
            name,
            "unknown",
            f"{label} follows {name!r}, which is not a relation of {label}.",
            "Name a reverse foreign key (the related_name of a ForeignKey pointing at "
            f"{label}) or a many-to-many field of {label}.",
        )
    if field.one_to_many:
        fk, target_name, kind = field.field, "", CHILDREN
        holder = fk.model
    elif field.many_to_many and not field.auto_created:
        through = field.remote_field.through
        fk = through._meta.get_field(field.m2m_field_name())
        target_name, kind, holder = field.m2m_reverse_field_name(), LINKS, through
    else:
        return FollowProblem(
            model,
            name,
            "not_followable",
            f"{label} follows {name!r}, which is neither a reverse foreign key nor a "
            "many-to-many field declared on it.",
            "Follow the rows that belong to the object: reverse foreign keys and the "
            "model's own many-to-many fields.",
        )
    event_model = _event_model_holding(holder, fk.column)
    if event_model is None:
        what = holder._meta.label
        return FollowProblem(
            model,
            name,
            "untracked",
            f"{label} follows {name!r}, but {what} is not tracked (or its events do not "
            f"record {fk.name!r}).",
            f"Decorate {what} (or, for an auto-created many-to-many table, a proxy of "
            f"{label}.{name}.through) with @audit_app.track(), recording {fk.name!r}.",
        )
    return Followed(
        name=name,
        label=str(capfirst(getattr(field, "verbose_name", None) or name.replace("_", " "))),
        kind=kind,
        event_model=event_model,
        fk_name=fk.name,
        fk_column=fk.column,
        target_name=target_name,
    )


def _index_name(table: str, column: str) -> str:
    digest = hashlib.md5(f"{table}:{column}".encode(), usedforsecurity=False).hexdigest()[:12]
    return f"audit_{digest}_fol"


def add_follow_index(followed: Followed) -> None:
    """Index the followed foreign key on the child's event table (once per column)."""
    meta = followed.event_model._meta
    name = _index_name(meta.db_table, followed.fk_column)
    if any(index.name == name for index in meta.indexes):
        return
    # The child's events while it belonged to one object. The foreign key alone: a
    # followed history is read by a bitmap scan (ORed with the rows that moved away),
    # so an order in the index would not be used, and a one-column index deduplicates
    # the many events of one parent (smaller, cheaper to write).
    meta.indexes.append(models.Index(fields=[followed.fk_name], name=name))


def resolve(model: type[models.Model]) -> tuple[tuple[Followed, ...], tuple[FollowProblem, ...]]:
    """Resolve (once) the declared follows of tracked ``model``."""
    event_model = model.audit_event_model
    cached = event_model.__dict__.get("audit_followed")
    if cached is not None:
        return cached, event_model.audit_follow_problems
    found, problems = [], []
    for name in getattr(event_model, "audit_follow_names", ()):
        result = resolve_name(model, name)
        (found if isinstance(result, Followed) else problems).append(result)
    for followed in found:
        add_follow_index(followed)
    event_model.audit_followed = tuple(found)
    event_model.audit_follow_problems = tuple(problems)
    return event_model.audit_followed, event_model.audit_follow_problems


def resolve_all() -> None:
    """Resolve the follows of every tracked model (when the app registry is ready)."""
    for model in tracked_models():
        resolve(model)


def declared_follows(model: type[models.Model]) -> dict[str, Followed]:
    """The follows declared on ``model`` and on its tracked concrete parents, by name."""
    declared: dict[str, Followed] = {}
    for each in [model, *model._meta.get_parent_list()]:
        if "audit_event_model" in each.__dict__:
            for followed in resolve(each)[0]:
                declared.setdefault(followed.name, followed)
    return declared


def followed_relations(
    model: type[models.Model], follow: Sequence[str] | None = None
) -> list[Followed]:
    """The relations of ``model`` to follow: ``follow`` names (None: the declared ones).

    Only declared relations can be followed (their index exists); another name is a
    ValueError naming the declared ones.
    """
    declared = declared_follows(model)
    if follow is None:
        return list(declared.values())
    if isinstance(follow, str):
        raise TypeError(f"follow takes a list of relation names, not {follow!r}.")
    unknown = [name for name in follow if name not in declared]
    if unknown:
        raise ValueError(
            f"{model._meta.label} does not follow {unknown}; declare them with "
            f"@audit_app.track(follow=[...]) (declared: {sorted(declared)})."
        )
    return [declared[name] for name in follow]
