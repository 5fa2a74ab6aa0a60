"""Change sets: the events of one object and its followed rows written in one context.

One admin save, one request, one ``audit_app.context`` block writes one context row
(``audit_app.runtime``), shared by its transactions: its events form one change set.
An event written without a context is a change set of its own.

``AuditEventQuerySet.changesets()`` pages change sets newest first without counting
them: the history's newest events give a page of keys, one more query reads their
events (and the diffs are attached per event table, as for any page of events).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import Case, F, Max, Q, TextField, When
from django.db.models.functions import Cast

from audit_app.following import Followed

ADDED, CHANGED, REMOVED = "added", "changed", "removed"
# An event's change-set key: its context, or the event itself when it has none.
KEY = Case(
    When(context_id__isnull=True, then=F("id")),
    default=Cast("context_id", TextField()),
    output_field=TextField(),
)


def changeset_key(event: Any) -> str:
    """The key of the change set ``event`` belongs to (as the SQL ``KEY`` computes it)."""
    return str(event.context_id) if event.context_id is not None else event.id


def merged_diff(events: Sequence[Any]) -> dict[str, list[Any]]:
    """{field: [value before the first event, value after the last]} of fields that
    differ, over events of one row, oldest first."""
    merged: dict[str, list[Any]] = {}
    for event in events:
        for name, (old, new) in (event.diff or {}).items():
            merged.setdefault(name, [old, new])[1] = new
    return {name: pair for name, pair in merged.items() if pair[0] != pair[1]}


@dataclass
class RowChange:
    """What one change set did to one row of a followed relation."""

    relation: Followed
    obj_id: str
    events: list[Any]  # oldest first
    kind: str  # ADDED, CHANGED or REMOVED

    @property
    def data(self) -> dict[str, Any]:
        """The row as the change set left it (as it was, for a removed row)."""
        return self.events[-1].data

    @property
    def diff(self) -> dict[str, list[Any]]:
        return merged_diff(self.events)

    @property
    def linked_id(self) -> Any:
        """LINKS: the key of the linked row (a tag of a product)."""
        return self.data.get(self.relation.target_name)


def _row_kind(events: list[Any], relation: Followed, parents: Sequence[str]) -> str | None:
    # Only the relation's own table records the foreign key (a concrete-inheritance
    # child's table does not): read the row's place from its events there.
    holder = relation.event_model._meta.label
    keyed = [e for e in events if e.event_model == holder] or events
    first, last = keyed[0], keyed[-1]
    if events[-1].label == "delete":
        last = events[-1]

    def belongs(event: Any) -> bool:
        return event.event_model != holder or str(event.data.get(relation.fk_name)) in parents

    arrived = first.label == "insert" or (
        first.diff is not None and relation.fk_name in first.diff and belongs(first)
    )
    left = last.label == "delete" or not belongs(last)
    if arrived and left:
        return None  # came and went within the change set: nothing to show
    if arrived:
        return ADDED
    return REMOVED if left else CHANGED


@dataclass
class ChangeSet:
    """The events of one object and its followed rows written in one context."""

    key: str
    events: list[Any]  # oldest first
    own: list[Any] = field(default_factory=list)  # the object's own events
    rows: list[RowChange] = field(default_factory=list)

    @property
    def newest(self) -> Any:
        return self.events[-1]

    @property
    def anchor(self) -> Any | None:
        """The object's newest own event in the set (None: only followed rows changed).

        Its version is the object as the change set left it.
        """
        return self.own[-1] if self.own else None

    @property
    def context_id(self) -> int | None:
        return self.newest.context_id

    @property
    def created_at(self) -> Any:
        return self.newest.created_at

    @property
    def metadata(self) -> dict[str, Any]:
        return self.newest.metadata

    @property
    def username(self) -> str | None:
        return self.newest.username

    @property
    def action(self) -> str:
        """The object's own action (created, changed, reverted...), else "changed".

        A change set that created (or restored) the object says so, whatever followed.
        """
        if not self.own:
            return "changed"
        first = self.own[0].action
        return first if first in ("created", "restored") else self.own[-1].action

    @property
    def own_diff(self) -> dict[str, list[Any]] | None:
        """The object's fields that changed (None when the set created the object)."""
        if not self.own or self.own[0].diff is None:
            return None
        return merged_diff(self.own)

    def relations(self) -> list[tuple[Followed, list[RowChange]]]:
        """Each relation with changed rows, in declaration order, with its rows."""
        found: dict[str, tuple[Followed, list[RowChange]]] = {}
        for row in self.rows:
            found.setdefault(row.relation.name, (row.relation, []))[1].append(row)
        return list(found.values())

    def rows_of(self, kind: str) -> list[RowChange]:
        return [row for row in self.rows if row.kind == kind]


def group(events: Sequence[Any], scope: Any) -> list[ChangeSet]:
    """Group events (any order) read by ``tracks()`` into change sets, newest first.

    ``scope`` is the queryset's ``FollowScope``: it tells own events from followed rows.
    """
    ordered = sorted(events, key=lambda e: (e.created_at, e.event_id))
    sets: dict[str, ChangeSet] = {}
    for event in ordered:
        key = changeset_key(event)
        sets.setdefault(key, ChangeSet(key, [])).events.append(event)
    for changeset in sets.values():
        _split(changeset, scope)
    return sorted(sets.values(), key=lambda s: (s.created_at, s.newest.event_id), reverse=True)


def _split(changeset: ChangeSet, scope: Any) -> None:
    by_row: dict[tuple[str, str], tuple[Followed, list[Any]]] = {}
    for event in changeset.events:
        relation = scope.relation_of(event) if scope is not None else None
        if relation is None:
            changeset.own.append(event)
        else:
            by_row.setdefault((relation.name, event.obj_id), (relation, []))[1].append(event)
    order = {r.name: i for i, r in enumerate(scope.relations)} if scope is not None else {}
    for (_, obj_id), (relation, events) in sorted(
        by_row.items(), key=lambda item: (order.get(item[0][0], 0), item[1][1][0].event_id)
    ):
        kind = _row_kind(events, relation, scope.pks)
        if kind is not None:
            changeset.rows.append(RowChange(relation, obj_id, events, kind))


class ChangeSets:
    """Change sets of a ``tracks()`` queryset, newest first, read a page at a time.

    ``selected`` picks the change sets (filters apply to it); their events are read from
    ``events`` (the unfiltered history), so a shown change set is whole. Slicing runs
    two queries (plus the diffs'); ``len()`` counts the sets (avoid it on big histories).
    """

    def __init__(self, selected: Any, events: Any) -> None:
        self.selected = selected
        self.events = events

    def _keys(self) -> Any:
        return (
            self.selected.without_diffs()
            .order_by()
            .annotate(changeset=KEY)
            .values("changeset")
            .annotate(newest=Max("created_at"), last_id=Max("event_id"))
            .order_by("-newest", "-last_id", "changeset")
        )

    def __len__(self) -> int:
        return self._keys().count()

    def __iter__(self) -> Iterator[ChangeSet]:
        return iter(self[:])

    def __getitem__(self, index: slice | int) -> Any:
        if isinstance(index, int):
            return self[index : index + 1][0]
        start, stop = index.start or 0, index.stop
        if stop is None or index.step not in (None, 1):
            keys = [row["changeset"] for row in self._keys()[index]]
        else:
            keys = self.page_keys(start, stop)
        return self.load(keys)

    def page_keys(self, start: int, stop: int) -> list[str]:
        """The keys of the change sets ranked ``start`` to ``stop`` (newest first).

        A change set's rank is that of its newest event, so reading the events newest
        first and keeping each key's first appearance ranks them: only as many events
        as the page needs are read (growing the batch until enough keys appear), not
        every event of the history as a GROUP BY would.
        """
        parts = [
            part.without_diffs()
            .order_by("-created_at", "-event_id")
            .annotate(changeset=KEY)
            .values_list("created_at", "event_id", "changeset")
            for part in self._parts()
        ]
        batch = max(8 * stop, 200)
        while True:
            found = [list(part[:batch]) for part in parts]
            rows = sorted((r for rows in found for r in rows), key=lambda r: r[:2], reverse=True)
            keys = list(dict.fromkeys(r[2] for r in rows))
            if len(keys) >= stop or all(len(rows) < batch for rows in found):
                return keys[start:stop]
            batch *= 4

    def _parts(self) -> list[Any]:
        """The selected events split into the object's own tables and the followed ones:
        each part is read newest first on its own, so the object's (object, time) index
        returns its events in order instead of PostgreSQL sorting them with the followed
        rows' events (which a bitmap scan reads unordered)."""
        scope = self.selected._audit_follow
        labels = list(self.selected.query.audit_scope or ())
        if scope is None or not scope.relations or not labels:
            return [self.selected]
        own = [label for label in labels if scope.is_own_table(label)]
        rest = [label for label in labels if label not in own]
        return [self.selected.across(*group) for group in (own, rest) if group]

    def load(self, keys: Sequence[str]) -> list[ChangeSet]:
        """The change sets with these keys, in the order of ``keys``."""
        if not keys:
            return []
        contexts = [int(k) for k in keys if k.isdigit()]
        lone = Q(pk__in=[])
        for key in keys:
            if not key.isdigit():
                label, _, event_id = key.rpartition(":")
                lone |= Q(event_id=int(event_id), event_model__iexact=label)
        events = list(self.events.filter(Q(context_id__in=contexts) | lone))
        found = {s.key: s for s in group(events, self.events._audit_follow)}
        return [found[k] for k in keys if k in found]


def changeset_of(event: Any, follow: Sequence[str] | None = None) -> ChangeSet:
    """The change set ``event`` belongs to, seen from the event's object."""
    model: type[models.Model] = event.tracked_model
    root = model(pk=model._meta.pk.to_python(event.obj_id))
    events = type(event).objects.tracks(root, follow=follow).select_related("context")
    (changeset,) = ChangeSets(events, events).load([changeset_key(event)])
    return changeset
