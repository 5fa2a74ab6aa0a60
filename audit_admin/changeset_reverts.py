"""A revert to a change set in the admin: the rows it touches, as the confirmation page
lists them, and the permissions it needs on their models (change to revert a row, add
to restore one, delete to delete one)."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _

from audit_admin.changeset_rendering import resolve_foreign_keys
from audit_admin.permissions import may_change_model
from audit_admin.restore_cascade import ShownRow
from audit_app.changeset_revert import (
    DELETE,
    RESTORE,
    ChangeSetRevertPlan,
    plan_changeset_revert,
)
from audit_app.exceptions import RevertError
from audit_app.following import followed_relations

_PERMISSION = {DELETE: "delete", RESTORE: "add"}


def follows(model: Any) -> bool:
    """Whether reverting an object of ``model`` reverts followed rows too."""
    return bool(followed_relations(model))


@dataclass(frozen=True)
class OwnPart:
    """What the confirmation page shows of the object's own fields (its first table)."""

    is_restore: bool = False
    skipped: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    not_recorded: tuple[str, ...] = ()


def permission_problems(request: HttpRequest, plan: ChangeSetRevertPlan) -> list[RevertError]:
    """One problem per (model, permission) the revert needs and the viewer lacks."""
    needed = dict.fromkeys((row.model, _PERMISSION.get(row.action, "change")) for row in plan.rows)
    return [
        RevertError(
            _("You may not %(action)s %(models)s, and this revert would; ask someone who may.")
            % {"action": action, "models": model._meta.verbose_name_plural}
        )
        for model, action in needed
        if not may_change_model(request.user, model, action)
    ]


def _label(instance: Any, row: Any) -> str:
    if instance is not None:
        with suppress(Exception):
            return str(instance)
    return f"{row.model._meta.verbose_name} {row.obj_id}"


def _what(row: Any) -> str:
    if row.action == DELETE:
        return _("deleted")
    if row.action == RESTORE:
        return _("restored")
    changes = ", ".join(f"{c.verbose_name} {c.old_display} → {c.new_display}" for c in row.changes)
    return _("changed: %(changes)s") % {"changes": changes}


def shown_rows(plan: ChangeSetRevertPlan) -> list[ShownRow]:
    """The rows the revert touches, labelled (foreign keys read once for all)."""
    resolve_foreign_keys([row.instance for row in plan.rows if row.instance is not None])
    return [
        ShownRow(
            relation=row.relation.label,
            name=row.relation.name,
            label=_label(row.instance, row),
            problems=tuple(str(p) for p in row.problems),
            action=_what(row),
        )
        for row in plan.rows
    ]


def revert_context(request: HttpRequest, event: Any, obj: Any) -> dict[str, Any]:
    """The confirmation page's own fields, rows, problems and the history version it was
    shown at (``changes`` are FieldChanges, still to prepare)."""
    plan = plan_changeset_revert(event, root=obj)
    first = plan.own[0] if plan.own else None
    own = OwnPart(
        skipped=tuple(first.skipped) if first else (),
        removed=tuple(first.removed) if first else (),
        not_recorded=tuple(first.not_recorded) if first else (),
    )
    return {
        "plan": own,
        "changes": plan.changes,
        "cascade_rows": shown_rows(plan),
        "cascade_title": _("Rows this revert changes"),
        "problems": [*plan.problems, *permission_problems(request, plan)],
        "expected_changeset": plan.expected,
    }
