"""The rows a restore brings back with a deleted object, as the confirmation page lists
them, and the permissions it needs: add permission on each of their models."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from audit_admin.changeset_rendering import resolve_foreign_keys
from audit_admin.permissions import may_change_model
from audit_app.cascade import CascadePlan, event_has_follows, plan_restore
from audit_app.exceptions import RevertError


@dataclass(frozen=True)
class ShownRow:
    """One row of the confirmation page's "also restored" list."""

    relation: str  # the relation's label ("Items")
    name: str  # the relation's name ("items")
    label: str  # the row as the admin labels it
    problems: tuple[str, ...]
    action: str = ""  # what a revert does to it ("deleted", "restored", "changed: ...")


def follows(event: Any) -> bool:
    """Whether restoring ``event``'s object brings back followed rows too."""
    return event_has_follows(event, None)


def permission_problems(request: HttpRequest, cascade: CascadePlan) -> list[RevertError]:
    """One problem per model of the restored rows the viewer may not add rows to."""
    refused = []
    for model in dict.fromkeys(row.model for row in cascade.rows):
        if not may_change_model(request.user, model, "add"):
            refused.append(
                RevertError(
                    _(
                        "You may not add %(models)s, and this restore would bring some back; "
                        "ask someone who may."
                    )
                    % {"models": model._meta.verbose_name_plural}
                )
            )
    return refused


def _label(instance: Any) -> str:
    with suppress(Exception):
        return str(instance)
    return f"{instance._meta.verbose_name} {instance.pk}"


def shown_rows(cascade: CascadePlan) -> list[ShownRow]:
    """The restored rows, labelled (their foreign keys read once for all of them)."""
    resolve_foreign_keys([row.plan.target for row in cascade.rows])
    return [
        ShownRow(
            relation=row.relation.label,
            name=row.relation.name,
            label=_label(row.plan.target),
            problems=tuple(str(p) for p in row.plan.problems),
        )
        for row in cascade.rows
    ]


def cascade_context(request: HttpRequest, event: Any) -> dict[str, Any]:
    """The confirmation page's list of rows restored with the object, and every problem
    (the rows' own and the viewer's missing permissions)."""
    cascade = plan_restore(event)
    problems = [*cascade.problems, *permission_problems(request, cascade)]
    return {
        "cascade_rows": shown_rows(cascade),
        "cascade_problems": [str(p) for p in problems],
        "cascade_title": capfirst(_("also restored")),
    }
