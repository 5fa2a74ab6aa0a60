"""django-filter FilterSets over AuditEvent querysets."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from audit_app.models import AuditEvent

ACTION_CHOICES = (
    ("created", "Created"),
    ("changed", "Changed"),
    ("deleted", "Deleted"),
    ("reverted", "Reverted"),
    ("restored", "Restored"),
    ("snapshot", "Snapshot"),
)
_SPECIAL = ("reverted", "restored")


def action_q(action: str) -> Q:
    """The filter matching ``AuditEvent.action == action``."""
    if action in _SPECIAL:
        return Q(label__in=("insert", "update"), context__metadata__audit_action=action)
    label = {"created": "insert", "changed": "update", "deleted": "delete"}.get(action, action)
    if label in ("insert", "update"):
        # Written outside any context, or in one that is not a revert or restore.
        # (Spelled out: a negated JSON lookup is NULL, not true, for a missing key.)
        return Q(label=label) & (
            Q(context__isnull=True) | ~Q(context__metadata__has_key="audit_action")
        )
    return Q(label=label)


class HistoryFilterSet(django_filters.FilterSet):
    """Filters of one object's timeline: user, action, date range, field changed."""

    user = django_filters.CharFilter(label="User", method="filter_user", max_length=150)
    action = django_filters.ChoiceFilter(
        label="Action", choices=ACTION_CHOICES, method="filter_action"
    )
    created_at = django_filters.DateFromToRangeFilter(
        label="Date",
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )
    field = django_filters.ChoiceFilter(label="Field changed", method="filter_field")

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def __init__(
        self, *args: Any, field_choices: list[tuple[str, str]] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.filters["field"].extra["choices"] = list(field_choices)

    def filter_user(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(context__metadata__username=value)

    def filter_action(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(action_q(value))

    def filter_field(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.changed(value)


def bound_form_errors(filterset: django_filters.FilterSet) -> forms.utils.ErrorDict:
    return filterset.form.errors if not filterset.is_valid() else forms.utils.ErrorDict()
