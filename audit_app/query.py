"""The aggregated event stream: one query over every event table.

``AuditEvent`` reads from ``audit_app_auditevent``, which is not a table: the compiler
defines it as a CTE, a ``UNION ALL`` of one branch per event table. PostgreSQL inlines
the CTE and pushes the outer ``WHERE`` and ``ORDER BY ... LIMIT`` into every branch,
so a page of newest events is a merge of per-table index scans, and a filter on the
model or label prunes whole branches. SqlFragments that need a typed comparison to use an
index (the object's key, foreign keys) are written into the branches directly by
``tracks()`` and ``references()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import connections, models
from django.db.models.sql import Query

from audit_app import sql
from audit_app.changesets import ChangeSets
from audit_app.column_history import field_values
from audit_app.counting import RowCount, count_rows
from audit_app.diff import attach_diffs
from audit_app.event_sql import (
    AGGREGATE_TABLE,
    EMPTY_COLUMNS,
    SqlFragment,
    previous_event_sql,
    tracked_field,
    union_sql,
)
from audit_app.follow_sql import child_filter_sql, subclass_filter_sql
from audit_app.following import Followed, followed_relations
from audit_app.recent_pages import recent_page
from audit_app.registry import event_model_of, event_models
from audit_app.replicas import history_database, primary_database


class AuditEventQuery(Query):
    """A Query whose table is the union of the event tables in ``audit_scope``."""

    audit_scope: dict[str, tuple[SqlFragment, ...]] | None = None

    def get_compiler(
        self, using: str | None = None, connection: Any = None, elide_empty: bool = True
    ):
        compiler = super().get_compiler(using, connection, elide_empty)
        compiler.__class__ = _compiler_class(type(compiler))
        return compiler


_compilers: dict[type, type] = {}


def _compiler_class(base: type) -> type:
    if base not in _compilers:

        def as_sql(self: Any, *args: Any, **kwargs: Any) -> tuple[str, tuple]:
            query_sql, params = base.as_sql(self, *args, **kwargs)
            # Keeps the SQL valid when no event table is in scope.
            union, union_params = union_sql(self.query.audit_scope) or (
                f"SELECT {EMPTY_COLUMNS} WHERE FALSE",
                (),
            )
            return (
                f"WITH {sql.quote(AGGREGATE_TABLE)} AS ({union}) {query_sql}",
                (*union_params, *params),
            )

        _compilers[base] = type(f"AuditEvent{base.__name__}", (base,), {"as_sql": as_sql})
    return _compilers[base]


def _event_model_labels(items: Iterable[Any]) -> set[str]:
    labels = set()
    for item in items:
        model = apps.get_model(item) if isinstance(item, str) else item
        if not hasattr(model, "audit_spec"):
            model = event_model_of(model)
        labels.add(model._meta.label_lower)
    return labels


def _objects_by_model(objs: Sequence[Any]) -> tuple[type[models.Model], list[Any]]:
    if len(objs) == 1 and isinstance(objs[0], models.QuerySet):
        queryset = objs[0]
        return queryset.model, list(queryset.values_list("pk", flat=True))
    if not objs:
        raise TypeError("Pass at least one object.")
    model = type(objs[0])
    if any(type(o) is not model for o in objs):
        raise TypeError("All objects must be instances of one model.")
    return model, [o.pk for o in objs]


def _own_filters(model: type[models.Model], pks: list[Any]) -> list[tuple[str, SqlFragment]]:
    """(event model label, filter) of every event table of the objects' own rows: their
    table, their concrete parents' tables, tables tracked through proxies of any."""
    concrete = model._meta.concrete_model
    tables = {concrete, *concrete._meta.get_parent_list()}
    found = []
    for event_model in event_models():
        tracked = event_model.audit_tracked_model._meta.concrete_model
        if tracked not in tables:
            continue
        pk_field = tracked._meta.pk
        values = [pk_field.get_db_prep_value(pk, connections["default"]) for pk in pks]
        column = sql.quote(event_model.audit_spec.pk_column)
        # One key: "=" lets the (object, created_at) index return the history
        # already in order, so a page of a long history reads only that page.
        clause = (
            (f"e.{column} = %s", (values[0],))
            if len(values) == 1
            else (f"e.{column} = ANY(%s)", (values,))
        )
        found.append((event_model._meta.label_lower, clause))
    return found


def _follow_filters(relation: Followed, pks: list[Any]) -> list[tuple[str, SqlFragment]]:
    """(event model label, filter) of the tables holding a followed relation's rows."""
    holder = relation.event_model
    fk = holder.audit_tracked_model._meta.concrete_model._meta.get_field(relation.fk_name)
    keys = [fk.target_field.get_db_prep_value(pk, connections["default"]) for pk in pks]
    found = [(holder._meta.label_lower, child_filter_sql(holder, relation.fk_column, keys))]
    holder_table = holder.audit_tracked_model._meta.concrete_model
    for event_model in event_models():
        tracked = event_model.audit_tracked_model._meta.concrete_model
        if holder_table in tracked._meta.get_parent_list():
            fragment = subclass_filter_sql(event_model, holder, relation.fk_column, keys)
            found.append((event_model._meta.label_lower, fragment))
    return found


def _any_of(fragments: list[SqlFragment]) -> SqlFragment:
    if len(fragments) == 1:
        return fragments[0]
    return (
        " OR ".join(f"({text})" for text, _ in fragments),
        tuple(p for _, params in fragments for p in params),
    )


@dataclass(frozen=True)
class FollowScope:
    """What ``tracks()`` selected: the objects and the relations followed from them."""

    model: type[models.Model]
    pks: tuple[str, ...]  # the objects' keys as event rows show them (``obj_id``)
    relations: tuple[Followed, ...]

    def is_own_table(self, event_model_label: str) -> bool:
        """Whether an event table holds the objects' own rows (not followed rows)."""
        return _is_own_table(self.model, event_model_label)

    def relation_of(self, event: Any) -> Followed | None:
        """The followed relation ``event`` belongs to (None: the objects' own event)."""
        if event.obj_id in self.pks and _is_own_table(self.model, event.event_model):
            return None
        event_model = apps.get_model(event.event_model)
        tracked = event_model.audit_tracked_model._meta.concrete_model
        for relation in self.relations:
            holder = relation.event_model.audit_tracked_model._meta.concrete_model
            if tracked is holder or holder in tracked._meta.get_parent_list():
                return relation
        return None


def _is_own_table(model: type[models.Model], event_model_label: str) -> bool:
    concrete = model._meta.concrete_model
    tracked = apps.get_model(event_model_label).audit_tracked_model._meta.concrete_model
    return tracked is concrete or tracked in concrete._meta.get_parent_list()


class AuditEventQuerySet(models.QuerySet):
    """Queries over every event table, with filters pushed into each table's branch."""

    def __init__(self, model: Any = None, query: Any = None, using: Any = None, hints: Any = None):
        super().__init__(model, query or AuditEventQuery(model), using, hints)
        self._audit_diffs = True
        self._audit_follow: FollowScope | None = None

    @property
    def db(self) -> str:
        """The alias this query reads: ``.using()``'s, else ``AUDIT_READ_DATABASE`` (the
        primary inside ``audit_app.replicas.primary_reads()``)."""
        if self._db or self._for_write:
            return super().db
        return history_database(self.model)

    def from_primary(self) -> AuditEventQuerySet:
        """Read from the primary, where the events are written: never behind a replica."""
        return self.using(primary_database(self.model))

    def _clone(self) -> AuditEventQuerySet:
        clone = super()._clone()
        clone._audit_diffs = self._audit_diffs
        clone._audit_follow = self._audit_follow
        return clone

    def _narrow(self, filters: dict[str, tuple[SqlFragment, ...]]) -> AuditEventQuerySet:
        """Keep only branches in ``filters``, adding their filters to any already there."""
        clone = self._chain()
        current = clone.query.audit_scope
        if current is None:
            current = {m._meta.label_lower: () for m in event_models()}
        clone.query.audit_scope = {
            label: (*current[label], *extra) for label, extra in filters.items() if label in current
        }
        return clone

    def across(self, *models_or_labels: Any) -> AuditEventQuerySet:
        """Only events of these tracked models (or event models, or "app.Model" labels)."""
        return self._narrow(dict.fromkeys(_event_model_labels(models_or_labels), ()))

    def tracks(self, *objs: Any, follow: Sequence[str] | None = None) -> AuditEventQuerySet:
        """Events of these objects (instances of one model, or one queryset), and of the
        rows of their followed relations while those belonged to them.

        ``follow`` names relations declared with ``track(follow=...)``; None (default)
        follows every declared one, ``()`` none. A concrete-inheritance child's history
        includes its parents' tables.
        """
        model, pks = _objects_by_model(objs)
        followed = followed_relations(model, follow)
        parts: dict[str, list[SqlFragment]] = {}
        for label, fragment in _own_filters(model, pks):
            parts.setdefault(label, []).append(fragment)
        for relation in followed:
            for label, fragment in _follow_filters(relation, pks):
                parts.setdefault(label, []).append(fragment)
        clone = self._narrow({label: (_any_of(found),) for label, found in parts.items()})
        clone._audit_follow = FollowScope(model, tuple(str(pk) for pk in pks), tuple(followed))
        return clone

    def references(self, *objs: Any) -> AuditEventQuerySet:
        """Events of rows whose foreign keys point at these objects."""
        model, pks = _objects_by_model(objs)
        targets = {model._meta.concrete_model, *model._meta.concrete_model._meta.get_parent_list()}
        filters: dict[str, tuple[SqlFragment, ...]] = {}
        for event_model in event_models():
            columns = []
            for name, column in event_model.audit_fields:
                field = tracked_field(event_model, name)
                if field.is_relation and field.related_model._meta.concrete_model in targets:
                    columns.append((field, column))
            if not columns:
                continue
            clauses, params = [], []
            for field, column in columns:
                target = field.target_field
                clauses.append(f"e.{sql.quote(column)} = ANY(%s)")
                params.append([target.get_db_prep_value(pk, connections["default"]) for pk in pks])
            filters[event_model._meta.label_lower] = ((" OR ".join(clauses), tuple(params)),)
        return self._narrow(filters)

    def changed(self, *field_names: str) -> AuditEventQuerySet:
        """Events whose diff includes any of these fields (first events excluded)."""
        filters: dict[str, tuple[SqlFragment, ...]] = {}
        for event_model in self._event_models():
            chosen = [v for v in field_values(event_model) if v.name in field_names]
            if not chosen:
                continue
            differs = " OR ".join(
                f"{v.value_sql('p')} IS DISTINCT FROM {v.value_sql('e')}" for v in chosen
            )
            # NULL (no previous event) filters the row out, like a first event's None diff.
            filters[event_model._meta.label_lower] = (
                (previous_event_sql(event_model, differs), ()),
            )
        return self._narrow(filters)

    def deleted(self) -> AuditEventQuerySet:
        """The last event of each object that is deleted now, when that event is its delete."""
        filters: dict[str, tuple[SqlFragment, ...]] = {}
        for event_model in self._event_models():
            spec = event_model.audit_spec
            pk = sql.quote(spec.pk_column)
            filters[event_model._meta.label_lower] = (
                (
                    f"e.audit_label = 'delete' AND NOT EXISTS (SELECT 1 FROM "
                    f"{sql.quote(spec.event_table)} AS later WHERE later.{pk} = e.{pk} AND "
                    "(later.audit_created_at, later.audit_id) > (e.audit_created_at, e.audit_id)) "
                    f"AND NOT EXISTS (SELECT 1 FROM {sql.quote(spec.table)} AS live "
                    f"WHERE live.{pk} = e.{pk})",
                    (),
                ),
            )
        return self._narrow(filters)

    def _event_models(self) -> list[type[models.Model]]:
        scope = self.query.audit_scope
        return event_models() if scope is None else [apps.get_model(label) for label in scope]

    def by_user(self, user: Any) -> AuditEventQuerySet:
        """Events written in a context of this user (or user primary key).

        SqlFragments the union's ``user_id``, which PostgreSQL pushes into every event
        table, where the (user, created_at) index returns the user's events in order.
        """
        return self.filter(user_id=getattr(user, "pk", user))

    def changesets(self, *, events: AuditEventQuerySet | None = None) -> ChangeSets:
        """These events grouped into change sets, newest first (sliceable, count-free).

        ``events`` (default: this queryset) is where each selected change set's events
        are read from: filter this queryset to pick change sets, and pass the unfiltered
        one to show them whole.
        """
        return ChangeSets(self, self if events is None else events)

    def without_diffs(self) -> AuditEventQuerySet:
        """Skip the previous-version lookup when the page does not show diffs."""
        clone = self._chain()
        clone._audit_diffs = False
        return clone

    def row_count(self) -> RowCount:
        """How many events match: counted when that is cheap, else the planner's estimate.

        A count reads at most ``AUDIT_EXACT_COUNT_LIMIT`` + 1 events, and runs only when
        the planner expects no more than that many (leaving out the rows it invents for
        tables never analyzed) and expects them to be cheap to read (see
        ``audit_app.counting``).
        """
        queryset = self.order_by()
        queryset.query.clear_limits()
        # Only the key: no branch builds an event's data to be counted.
        keys = queryset.values("event_id")
        statement, params = keys.query.get_compiler(using=keys.db).as_sql()
        tables = [m.audit_spec.event_table for m in self._event_models()]
        return count_rows(statement, params, tables=tables, using=keys.db)

    def estimated_count(self) -> int:
        """How many events match: exact for a few, the planner's estimate for many.

        ``row_count().value``; ``row_count().exact`` tells which it is.
        """
        return self.row_count().value

    def _fetch_all(self) -> None:
        fresh = self._result_cache is None
        if fresh:
            self._result_cache = recent_page(self, self._event_models())
        super()._fetch_all()
        if (
            fresh
            and self._audit_diffs
            and self._result_cache
            and not self._iterable_class_is_values()
        ):
            attach_diffs(self._result_cache, using=self.db)

    def _iterable_class_is_values(self) -> bool:
        return self._iterable_class is not models.query.ModelIterable


class AuditEventManager(models.Manager.from_queryset(AuditEventQuerySet)):  # type: ignore[misc]
    """``AuditEvent.objects``: reads where its querysets read (``AuditEventQuerySet.db``)."""

    @property
    def db(self) -> str:
        return self._db or history_database(self.model)
