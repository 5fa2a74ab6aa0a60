"""The filter set of one object's timeline (django-filter)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from audit_admin.action_filter import ACTION_CHOICES, action_q
from audit_app.models import AuditEvent


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
