"""Restore with the cascade: a deleted object comes back with the followed rows that its
deletion removed.

The rows are those of the deletion's change set (``audit_app.changesets``) whose last
event there is their delete: an order's items, a product's tag links. They are inserted
with their primary keys, after the object (their foreign keys point at it), children
before many-to-many links, in one transaction and one context, so the restore is one
change set.

Every row is checked by ``reverting.preview`` after the rows it depends on were
inserted in that transaction: a unique value now taken, a foreign key to a row that is
gone, a row that exists again, validation errors. A preview (``plan_restore``) does the
same work and rolls it back; a restore with any problem rolls back and raises the
first, so nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, models, router, transaction
from django.utils.text import capfirst

from audit_app.changeset_revert import revert_changeset
from audit_app.changesets import REMOVED, changeset_of
from audit_app.exceptions import RevertConflict, RevertError
from audit_app.following import CHILDREN, Followed, followed_relations
from audit_app.replicas import primary_reads
from audit_app.reverting import RevertPlan, Version, load_version, preview
from audit_app.reverting import revert as revert_one
from audit_app.runtime import context


@dataclass
class RestoredRow:
    """One followed row a restore brings back, and its plan."""

    relation: Followed
    plan: RevertPlan

    @property
    def model(self) -> type[models.Model]:
        return self.plan.version.tracked_model


@dataclass
class CascadePlan:
    """A restore of an object and the rows its deletion removed."""

    root: RevertPlan
    rows: list[RestoredRow] = field(default_factory=list)
    problems: list[RevertError] = field(default_factory=list)


def _most_derived(events: Sequence[Any]) -> Any:
    """Of one row's delete events (one per table of a concrete-inheritance chain), the
    one of its most derived model: restoring it restores its parents' rows too."""
    deletes = [e for e in events if e.label == "delete"]
    return max(deletes, key=lambda e: len(e.tracked_model._meta.get_parent_list()))


def removed_rows(event: Any, follow: Sequence[str] | None) -> list[tuple[Followed, Any]]:
    """The followed rows deleted in the change set of ``event`` (the object's delete),
    as (relation, their delete event), children before links."""
    changeset = changeset_of(event, follow)
    found = [
        (row.relation, _most_derived(row.events))
        for row in changeset.rows
        if row.kind == REMOVED and row.events[-1].label == "delete"
    ]
    return sorted(found, key=lambda item: item[0].kind != CHILDREN)


def _insert(plan: RevertPlan, using: str) -> RevertError | None:
    try:
        with transaction.atomic(using=using):
            plan.target.save(force_insert=True, using=using)
    except IntegrityError as exc:
        return RevertError(f"The database refused to restore {plan.target!r}: {exc}".strip())
    return None


def _row_plan(relation: Followed, version: Version, using: str) -> RestoredRow:
    plan = preview(version, using=using)
    if not plan.is_restore:
        model = version.tracked_model
        plan.problems.insert(
            0,
            RevertConflict(
                f"{capfirst(model._meta.verbose_name)} {version.pk} exists again; it cannot be "
                "restored over the row that is there now."
            ),
        )
    return RestoredRow(relation, plan)


def _run(
    event: Any, follow: Sequence[str] | None, using: str, metadata: dict[str, Any], apply: bool
) -> CascadePlan:
    version = load_version(event, using)
    with transaction.atomic(using=using), context(**metadata):
        root = preview(version, using=using)
        if not root.is_restore:
            raise RevertError(f"{root.obj} is not deleted; there is nothing to restore.")
        cascade = CascadePlan(root, problems=list(root.problems))
        refused = _insert(root, using)
        cascade.problems += [refused] if refused else []
        for relation, row_event in removed_rows(event, follow):
            row = _row_plan(relation, load_version(row_event, using), using)
            cascade.rows.append(row)
            cascade.problems += row.plan.problems
            if not row.plan.problems:
                refused = _insert(row.plan, using)
                cascade.problems += [refused] if refused else []
        if cascade.problems or not apply:
            transaction.set_rollback(True, using=using)
    return cascade


@primary_reads()
def plan_restore(
    event: Any, *, follow: Sequence[str] | None = None, using: str | None = None
) -> CascadePlan:
    """Work out the restore of ``event``'s deleted object with its removed rows, with
    every problem named; nothing is written."""
    model = load_version(event, using or "default").tracked_model
    using = using or router.db_for_write(model)
    return _run(event, follow, using, {"audit_action": "restored"}, apply=False)


@primary_reads()
def restore(
    event: Any,
    *,
    follow: Sequence[str] | None = None,
    user: Any = None,
    reason: str = "",
    using: str | None = None,
) -> models.Model:
    """Restore ``event``'s deleted object and the followed rows its deletion removed.

    One transaction and one change set (``audit_action`` "restored", the reason, the
    source event); raises the first problem, with nothing written, when any row cannot
    be restored.
    """
    version = load_version(event, using or "default")
    using = using or router.db_for_write(version.tracked_model)
    metadata: dict[str, Any] = {
        "audit_action": "restored",
        "audit_source": version.key,
        "reason": reason,
    }
    if user is not None:
        metadata.update(user=user.pk, username=user.get_username())
    cascade = _run(event, follow, using, metadata, apply=True)
    if cascade.problems:
        raise cascade.problems[0]
    return cascade.root.target


def _is_deleted(version: Any, using: str) -> bool:
    model = version.tracked_model
    return not model._base_manager.using(using).filter(pk=version.pk).exists()


@primary_reads()
def revert(
    event: Any,
    *,
    follow: Sequence[str] | None = None,
    fields: list[str] | None = None,
    user: Any = None,
    reason: str = "",
    expected_event_id: int | None = None,
    using: str | None = None,
) -> models.Model:
    """Revert ``event``'s object to its version, or restore it when it is deleted.

    For a model that follows relations (``follow``, default: the declared ones; ``()``
    none), a revert brings the object's followed rows back to right after ``event``'s
    change set too (``changeset_revert.revert_changeset``; ``fields`` limits the
    object's own fields), and a restore brings back the rows the deletion removed
    (``restore``). Otherwise see ``audit_app.reverting.revert``.
    """
    if event_has_follows(event, follow):
        version = load_version(event, using or "default")
        if _is_deleted(version, using or "default"):
            if version.label == "delete" and fields is None:
                return restore(event, follow=follow, user=user, reason=reason, using=using)
        else:
            return revert_changeset(
                event,
                follow=follow,
                fields=fields,
                user=user,
                reason=reason,
                expected_event_id=expected_event_id,
                using=using,
            )
    return revert_one(
        event,
        fields=fields,
        user=user,
        reason=reason,
        expected_event_id=expected_event_id,
        using=using,
    )


def event_has_follows(event: Any, follow: Sequence[str] | None) -> bool:
    """Whether ``event``'s object follows any relation (``follow`` picks them)."""
    if not hasattr(event, "obj_model"):
        return False
    return bool(followed_relations(event.tracked_model, follow))
