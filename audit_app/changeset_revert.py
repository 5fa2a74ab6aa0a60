"""Revert to a change set: the object and its followed rows as they were right after it.

"Right after" is every event of the object's followed history written up to the change
set's newest event (by time). From those and the live tables:

- a row that belonged then and still exists gets its values back (per event table, as
  ``reverting.preview`` works them out), moving it back if it moved away;
- a row that belonged then and is gone now is restored with its primary key;
- a row that belongs now but did not then is deleted (a link is removed).

Everything happens in one transaction and one context (``audit_action`` "reverted",
the source event, the reason), so the revert is one change set. Deletes come first
(they free unique values), then restores (children before links), then changed rows;
each row is checked once what it depends on is in place. A preview does the same work
and rolls it back; a revert with any problem rolls back and raises the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import IntegrityError, models, router, transaction
from django.db.models.deletion import ProtectedError, RestrictedError
from django.utils.text import capfirst

from audit_app.changesets import ChangeSets, changeset_key
from audit_app.exceptions import NothingToRevert, RevertConflict, RevertError
from audit_app.following import CHILDREN, Followed, followed_relations
from audit_app.replicas import primary_reads
from audit_app.reverting import RevertPlan, load_version, preview
from audit_app.runtime import context

DELETE, RESTORE, REVERT = "delete", "restore", "revert"


@dataclass
class RowAction:
    """What the revert does to one followed row."""

    relation: Followed
    obj_id: str
    action: str  # DELETE, RESTORE or REVERT
    instance: models.Model | None  # the row (live, or as restored; None until planned)
    plans: list[RevertPlan] = field(default_factory=list)  # RESTORE, REVERT
    problems: list[RevertError] = field(default_factory=list)

    @property
    def model(self) -> type[models.Model]:
        return self.relation.child_model

    @property
    def changes(self) -> list[Any]:
        return [c for plan in self.plans for c in plan.changes]


@dataclass
class ChangeSetRevertPlan:
    """A revert of an object and its followed rows to right after a change set."""

    own: list[RevertPlan]  # the object's own tables whose fields change
    rows: list[RowAction]
    problems: list[RevertError]
    expected: str  # the key of the newest event of the history when it was worked out

    @property
    def changes(self) -> list[Any]:
        return [c for plan in self.own for c in plan.changes]


@dataclass
class _History:
    """The followed history up to the cutoff, by row, newest event last."""

    own: dict[str, Any]  # event model label -> the object's last event there
    rows: dict[tuple[str, str], tuple[Followed, list[Any]]]
    newest: str


def _read(events: Any, root: models.Model, cutoff: Any) -> _History:
    scope = events._audit_follow
    newest = events.without_diffs().order_by("-created_at", "-event_id").first()
    own: dict[str, Any] = {}
    rows: dict[tuple[str, str], tuple[Followed, list[Any]]] = {}
    chosen = events.without_diffs().filter(created_at__lte=cutoff)
    for event in chosen.order_by("created_at", "event_id"):
        relation = scope.relation_of(event)
        if relation is None:
            own[event.event_model] = event
        else:
            rows.setdefault((relation.name, event.obj_id), (relation, []))[1].append(event)
    return _History(own, rows, newest.id if newest else "")


def _last_per_table(events: list[Any]) -> list[Any]:
    last: dict[str, Any] = {}
    for event in events:
        last[event.event_model] = event
    return list(last.values())


def _belonged(relation: Followed, events: list[Any], root: models.Model) -> bool:
    holder = relation.event_model._meta.label
    keyed = [e for e in events if e.event_model == holder]
    if not keyed or keyed[-1].label == "delete":
        return False
    return str(keyed[-1].data.get(relation.fk_name)) == str(root.pk)


def _live(relation: Followed, root: models.Model, candidates: list[str], using: str) -> dict:
    """The relation's rows that belong to ``root`` now, and the candidates that exist."""
    model = relation.child_model._meta.concrete_model
    manager = model._base_manager.using(using)
    belong = {str(o.pk): o for o in manager.filter(**{relation.fk_name: root.pk})}
    pk = model._meta.pk
    keys = [pk.to_python(c) for c in candidates]
    exist = {str(o.pk): o for o in manager.filter(pk__in=keys)}
    return {"belong": belong, "exist": exist}


def _plan_rows(history: _History, root: models.Model, relations: Sequence[Followed], using: str):
    actions = []
    for relation in relations:
        mine = {k[1]: v[1] for k, v in history.rows.items() if k[0] == relation.name}
        live = _live(relation, root, list(mine), using)
        for obj_id, events in mine.items():
            if not _belonged(relation, events, root):
                continue
            if obj_id in live["exist"]:
                actions.append(RowAction(relation, obj_id, REVERT, live["exist"][obj_id]))
            else:
                actions.append(RowAction(relation, obj_id, RESTORE, None))
        for obj_id, obj in live["belong"].items():
            if obj_id not in mine or not _belonged(relation, mine[obj_id], root):
                actions.append(RowAction(relation, obj_id, DELETE, obj))
    order = {DELETE: 0, RESTORE: 1, REVERT: 2}
    return sorted(actions, key=lambda a: (order[a.action], a.relation.kind != CHILDREN))


def _save(plan: RevertPlan, using: str) -> RevertError | None:
    try:
        with transaction.atomic(using=using):
            if plan.is_restore:
                plan.target.save(force_insert=True, using=using)
            else:
                names = [plan.version.tracked_model._meta.get_field(n).attname for n in plan.fields]
                plan.target.save(update_fields=names, using=using)
    except IntegrityError as exc:
        return RevertError(f"The database refused to write {plan.target!r}: {exc}".strip())
    return None


def _delete(action: RowAction, using: str) -> None:
    try:
        with transaction.atomic(using=using):
            action.instance.delete(using=using)
    except (ProtectedError, RestrictedError, IntegrityError) as exc:
        action.problems.append(
            RevertError(
                f"{capfirst(action.model._meta.verbose_name)} “{action.instance}” cannot be "
                f"deleted: {exc.args[0] if exc.args else exc}"
            )
        )


def _apply_plans(
    versions: list[Any], using: str, fields: Any = None, expected: int | None = None
) -> tuple[list, list]:
    plans, problems = [], []
    for version in versions:
        plan = preview(version, fields=fields, using=using, expected_event_id=expected)
        found = [p for p in plan.problems if not isinstance(p, NothingToRevert)]
        if plan.fields or plan.is_restore:
            plans.append(plan)
            if not found:
                refused = _save(plan, using)
                found += [refused] if refused else []
        problems += found
    return plans, problems


def _run_row(action: RowAction, history: _History, using: str) -> None:
    if action.action == DELETE:
        _delete(action, using)
        return
    events = history.rows[(action.relation.name, action.obj_id)][1]
    if action.action == RESTORE:
        deepest = max(
            _last_per_table(events), key=lambda e: len(e.tracked_model._meta.get_parent_list())
        )
        action.plans, action.problems = _apply_plans([load_version(deepest, using)], using)
        action.instance = action.plans[0].target if action.plans else None
        return
    versions = [load_version(e, using) for e in _last_per_table(events)]
    action.plans, action.problems = _apply_plans(versions, using)


def _own_fields(event_model_label: str, fields: Sequence[str] | None) -> Any:
    if fields is None:
        return None
    recorded = {n for n, _c in apps.get_model(event_model_label).audit_fields}
    return [f for f in fields if f in recorded]


def _run(
    event: Any,
    root: models.Model,
    relations: Sequence[Followed],
    options: dict[str, Any],
    apply: bool,
) -> ChangeSetRevertPlan:
    using = options["using"]
    events = type(event).objects.tracks(root, follow=[r.name for r in relations])
    with transaction.atomic(using=using), context(**options["metadata"]):
        # Lock the object: a concurrent revert of it waits, then sees the newer history.
        type(root)._default_manager.using(using).select_for_update().filter(pk=root.pk).first()
        history = _read(events, root, options["cutoff"])
        problems: list[RevertError] = []
        expected = options.get("expected")
        if expected is not None and expected != history.newest:
            problems.append(
                RevertConflict(
                    f"{capfirst(root._meta.verbose_name)} “{root}” or its rows changed since "
                    "you looked at them; review the latest version and try again."
                )
            )
        own_versions = [
            (load_version(e, using), _own_fields(label, options["fields"]))
            for label, e in history.own.items()
        ]
        own, unchanged = [], []
        expected_table, expected_id = options.get("expected_event_id") or (None, None)
        for version, fields in own_versions:
            check = expected_id if version.event_model._meta.label == expected_table else None
            plans, found = _apply_plans([version], using, fields, check)
            own += plans
            problems += found
            unchanged += (
                [
                    p
                    for p in preview(version, fields=fields, using=using).problems
                    if isinstance(p, NothingToRevert)
                ]
                if not plans
                else []
            )
        rows = _plan_rows(history, root, relations, using)
        for action in rows:
            _run_row(action, history, using)
            problems += action.problems
        rows = [a for a in rows if a.action == DELETE or a.plans or a.problems]
        if not own and not rows and not problems:
            problems.append(
                unchanged[0]
                if unchanged and not history.rows
                else NothingToRevert(
                    f"{capfirst(root._meta.verbose_name)} “{root}” and its rows already match "
                    "this version; there is nothing to revert."
                )
            )
        if problems or not apply:
            transaction.set_rollback(True, using=using)
    return ChangeSetRevertPlan(own, rows, problems, history.newest)


def _check_fields(model: type[models.Model], fields: Sequence[str] | None) -> None:
    if fields is None:
        return
    recorded = [
        name
        for each in [model, *model._meta.get_parent_list()]
        if "audit_event_model" in each.__dict__
        for name, _column in each.audit_event_model.audit_fields[1:]
    ]
    unknown = sorted(set(fields) - set(recorded))
    if unknown:
        raise RevertError(
            f"{model._meta.label} history has no field(s) {unknown}; choose from {recorded}."
        )


def _prepare(
    event: Any,
    root: models.Model | None,
    follow: Sequence[str] | None,
    using: str | None,
    fields: Sequence[str] | None = None,
) -> tuple[models.Model, list[Followed], dict[str, Any]]:
    """The live object, the relations to follow and the change set's end (the cutoff)."""
    model = event.tracked_model
    if root is None:
        root = model._default_manager.filter(pk=model._meta.pk.to_python(event.obj_id)).first()
        if root is None:
            raise RevertError(
                f"{capfirst(model._meta.verbose_name)} {event.obj_id} is deleted; restore it."
            )
    relations = followed_relations(type(root), follow)
    _check_fields(type(root), fields)
    events = type(event).objects.tracks(root, follow=[r.name for r in relations])
    (changeset,) = ChangeSets(events, events).load([changeset_key(event)]) or (None,)
    if changeset is None:
        raise RevertError(f"Event {event.id} is not part of the history of {root}.")
    options = {"using": using or router.db_for_write(type(root)), "cutoff": changeset.created_at}
    return root, relations, options


@primary_reads()
def plan_changeset_revert(
    event: Any,
    *,
    root: models.Model | None = None,
    follow: Sequence[str] | None = None,
    fields: Sequence[str] | None = None,
    using: str | None = None,
) -> ChangeSetRevertPlan:
    """Work out the revert to right after ``event``'s change set; nothing is written.

    ``root`` is the object whose history it is (default: ``event``'s object); ``fields``
    limits the object's own fields (its rows are reverted whole).
    """
    root, relations, options = _prepare(event, root, follow, using, fields)
    options.update(fields=fields, metadata={"audit_action": "reverted"})
    return _run(event, root, relations, options, apply=False)


@primary_reads()
def revert_changeset(
    event: Any,
    *,
    root: models.Model | None = None,
    follow: Sequence[str] | None = None,
    fields: Sequence[str] | None = None,
    user: Any = None,
    reason: str = "",
    expected: str | None = None,
    expected_event_id: int | None = None,
    using: str | None = None,
) -> models.Model:
    """Revert the object and its followed rows to right after ``event``'s change set.

    ``expected`` is ``plan.expected`` of the preview the user saw (the newest event of
    the followed history), ``expected_event_id`` the newest own event the user saw of
    ``event``'s table: when the history has a newer one, ``RevertConflict``. Raises the
    first problem, with nothing written.
    """
    root, relations, options = _prepare(event, root, follow, using, fields)
    source = load_version(event, options["using"]).key
    metadata: dict[str, Any] = {"audit_action": "reverted", "audit_source": source}
    metadata["reason"] = reason
    if user is not None:
        metadata.update(user=user.pk, username=user.get_username())
    options.update(
        fields=fields,
        metadata=metadata,
        expected=expected,
        expected_event_id=(event.event_model, expected_event_id),
    )
    plan = _run(event, root, relations, options, apply=True)
    if plan.problems:
        raise plan.problems[0]
    root.refresh_from_db()
    return root
