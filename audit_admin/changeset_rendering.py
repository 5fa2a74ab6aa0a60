"""A change set's followed rows as the timeline shows them, per relation.

"Items: added 2 x Widget; 3 x Gadget: quantity 1 → 3; removed 1 x Manual. Tags: added
sale, removed new". Rows are labelled as the admin labels them (``str()`` of the row as
recorded), with the rows' foreign keys resolved for a whole page at once (one query per
related model), so a page costs the same queries whatever the number of rows on it.
A viewer who may not view a relation's model sees how many rows changed, not which.
All values are escaped (``format_html``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import Any

from django.db import models
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from audit_admin import rendering
from audit_admin.permissions import may_view_model
from audit_app.changesets import ADDED, CHANGED, REMOVED, ChangeSet, RowChange
from audit_app.diff import field_changes, to_python
from audit_app.following import LINKS

_KINDS = ((ADDED, _("added")), (CHANGED, _("changed")), (REMOVED, _("removed")))


def instance_from_data(model: type[models.Model], data: dict[str, Any]) -> models.Model:
    """An unsaved instance holding the recorded values (fields the model lost left out)."""
    opts = model._meta.concrete_model._meta
    values = {}
    for name, value in data.items():
        try:
            field = opts.get_field(name)
        except Exception:  # noqa: S112 - a removed field: not part of the label
            continue
        if field.concrete:
            values[field.attname] = to_python(field, value)
    return model(**values)


def _own_data(row: RowChange) -> dict[str, Any] | None:
    """The data of the row's newest event in the relation's own table."""
    label = row.relation.event_model._meta.label
    for event in reversed(row.events):
        if event.event_model == label:
            return event.data
    return None


def resolve_foreign_keys(instances: Sequence[models.Model]) -> None:
    """Fill the forward foreign keys of ``instances``: one query per related model."""
    wanted: dict[type[models.Model], set[Any]] = defaultdict(set)
    fields = []
    for instance in instances:
        for field in instance._meta.concrete_model._meta.concrete_fields:
            if field.many_to_one and getattr(instance, field.attname) is not None:
                wanted[field.related_model].add(getattr(instance, field.attname))
                fields.append((instance, field))
    found = {m: m._default_manager.in_bulk(pks) for m, pks in wanted.items()}
    for instance, field in fields:
        related = found[field.related_model].get(getattr(instance, field.attname))
        if related is not None:
            field.set_cached_value(instance, related)


def _label(instance: models.Model | None, row: RowChange) -> str:
    # A label that needs a row that is gone (or a field the model lost) falls back to
    # the model's name and the key.
    if instance is not None:
        with suppress(Exception):
            if row.relation.kind != LINKS:
                return str(instance)
            target = instance._meta.get_field(row.relation.target_name)
            if target.is_cached(instance):
                return str(target.get_cached_value(instance))
    key = row.linked_id if row.relation.kind == LINKS else row.obj_id
    return f"{row.relation.child_model._meta.verbose_name} {key}"


def row_labels(rows: Iterable[RowChange]) -> dict[int, str]:
    """Each row's label, by ``id(row)``, with every row's foreign keys read at once."""
    rows = list(rows)
    instances: dict[int, models.Model | None] = {}
    for row in rows:
        data = _own_data(row)
        instances[id(row)] = (
            instance_from_data(row.relation.child_model, data) if data is not None else None
        )
    resolve_foreign_keys([i for i in instances.values() if i is not None])
    return {id(row): _label(instances[id(row)], row) for row in rows}


class ChangeSetRenderer:
    """Renders the followed rows of a page of change sets for one viewer."""

    def __init__(self, changesets: Sequence[ChangeSet], request: HttpRequest, admin_site: Any):
        self.request = request
        rows = [row for changeset in changesets for row in changeset.rows]
        self._visible: dict[str, bool] = {}
        shown_rows = [row for row in rows if self.may_view(row)]
        self.labels = row_labels(shown_rows)
        per_row = {id(row): self._changes(row) for row in shown_rows if row.kind == CHANGED}
        prepared = rendering.prepare(
            [c for changes in per_row.values() for c in changes], request, admin_site
        )
        by_change = {id(s.change): s for s in prepared}
        self.changes = {k: [by_change[id(c)] for c in v] for k, v in per_row.items()}

    def may_view(self, row: RowChange) -> bool:
        """Whether the viewer may see the row's values (view permission on its model,
        and on the linked model of a many-to-many relation)."""
        name = row.relation.name + ":" + row.relation.event_model._meta.label
        if name not in self._visible:
            models_ = [row.relation.child_model]
            if row.relation.kind == LINKS:
                target = row.relation.child_model._meta.get_field(row.relation.target_name)
                models_.append(target.related_model)
            self._visible[name] = all(may_view_model(self.request.user, m) for m in models_)
        return self._visible[name]

    @staticmethod
    def _changes(row: RowChange) -> list[Any]:
        diff = row.diff
        masked = row.relation.event_model.audit_masked
        old = {k: v[0] for k, v in diff.items()}
        new = {k: v[1] for k, v in diff.items()}
        return field_changes(row.relation.child_model, old, new, masked=masked)

    def _row_html(self, row: RowChange) -> SafeString:
        label = format_html('<span class="audit-row-label">{}</span>', self.labels[id(row)])
        if row.kind != CHANGED:
            return label
        parts = format_html_join(
            ", ",
            "{} {} → {}",
            ((c.verbose_name, c.old_display, c.new_display) for c in self.changes.get(id(row), [])),
        )
        return format_html("{}: {}", label, parts) if parts else label

    def _relation_html(self, relation: Any, rows: list[RowChange]) -> SafeString:
        groups = []
        visible = self.may_view(rows[0])
        for kind, verb in _KINDS:
            chosen = [row for row in rows if row.kind == kind]
            if not chosen:
                continue
            if not visible:
                groups.append(format_html("{} {}", len(chosen), verb))
            elif kind == CHANGED:
                groups.append(format_html_join("; ", "{}", ((self._row_html(r),) for r in chosen)))
            else:
                items = format_html_join(", ", "{}", ((self._row_html(r),) for r in chosen))
                groups.append(format_html("{} {}", verb, items))
        return format_html(
            '<p class="audit-relation{}" data-relation="{}"><span class="audit-relation-name">'
            "{}:</span> {}.</p>",
            "" if visible else " audit-relation-hidden",
            relation.name,
            relation.label,
            format_html_join("; ", "{}", ((g,) for g in groups)),
        )

    def render(self, changeset: ChangeSet) -> SafeString:
        """Every relation of ``changeset`` with changed rows, one paragraph each."""
        return format_html_join(
            "", "{}", ((self._relation_html(r, rows),) for r, rows in changeset.relations())
        )
