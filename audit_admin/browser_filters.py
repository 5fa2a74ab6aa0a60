"""The event browser's FilterSet: every filter runs on an index (or prunes whole tables).

The queryset handed in is already restricted to the models the viewer may see, so the
filters only ever narrow it. Which filter uses which index:

==============  ===============================================================
user            ``by_user()``: the context's user id (also for deleted users)
model           ``across()``: keeps only that model's event table
action          the event label, plus the context's ``audit_action`` for reverts
date range      each event table's ``(created_at, id)`` index
object id       ``tracks()``: each table's object index (needs a model)
request id      the expression index on the context's ``request_id``
context value   a whitelisted metadata key (``AUDIT_ADMIN_CONTEXT_KEYS``)
search ``q``    an exact request id, or an object written ``app.model:id``
==============  ===============================================================
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Any

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.fields.json import KeyTextTransform
from django.db.models.query import QuerySet

from audit_admin.action_filter import ACTION_CHOICES, action_q

# "shop.order:42": an object typed into the search box.
_OBJECT_RE = re.compile(r"^(?P<label>[A-Za-z0-9_]+\.[A-Za-z0-9_]+):(?P<pk>.{1,100})$")
# "#42": a user by primary key, which also finds the events of deleted users.
_USER_PK_RE = re.compile(r"^#(?P<pk>[0-9]{1,18})$")
# Dates far outside this range overflow when converted to UTC (and mean nothing here).
_EARLIEST, _LATEST = datetime.date(1900, 1, 1), datetime.date(9000, 12, 31)


def model_label(model: type[models.Model]) -> str:
    """The value the model filter takes: ``shop.order`` (as the changelists link it)."""
    return model._meta.label_lower


def model_title(model: type[models.Model]) -> str:
    return f"{model._meta.app_config.verbose_name}: {str(model._meta.verbose_name).capitalize()}"


def object_pk(model: type[models.Model], raw: str) -> Any:
    """``raw`` as a primary key of ``model``; ValidationError when it cannot be one.

    Validated here (type and range) because a value the database refuses, such as an
    integer past bigint, would otherwise end as a server error.
    """
    pk_field = model._meta.concrete_model._meta.pk
    target = pk_field.target_field if pk_field.is_relation else pk_field
    try:
        return target.clean(raw, None)
    except ValidationError as exc:
        raise ValidationError(
            f"“{raw}” is not a valid id of a {model._meta.verbose_name}.", code="invalid_pk"
        ) from exc


def with_key(queryset: QuerySet, key: str, value: str) -> QuerySet:
    """Events whose context has ``metadata[key] == value`` (``key`` is whitelisted).

    Written as ``metadata ->> key`` so that ``request_id`` matches its expression index.
    """
    alias = f"_audit_ctx_{key}"
    return queryset.alias(**{alias: KeyTextTransform(key, "context__metadata")}).filter(
        **{alias: value}
    )


class EventFilterForm(forms.Form):
    """Checks the filters that depend on each other, and the date range's bounds."""

    #: Set by the FilterSet: the models the viewer may see, by ``model_label``.
    models_by_label: dict[str, type[models.Model]] = {}
    #: The object id converted to the chosen model's primary key type, once clean.
    object_pk: Any = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        label, raw_id = cleaned.get("model"), cleaned.get("object_id")
        if raw_id and not label and "model" not in self.errors:
            self.add_error(
                "object_id", "Choose a model too: object ids are only unique within one model."
            )
        elif raw_id and label in self.models_by_label:
            try:
                self.object_pk = object_pk(self.models_by_label[label], raw_id)
            except ValidationError as exc:
                self.add_error("object_id", exc)
        if cleaned.get("context_value") and not cleaned.get("context_key"):
            self.add_error("context_key", "Choose the context key to compare the value with.")
        span = cleaned.get("created_at")
        if span is not None:
            for moment in (span.start, span.stop):
                if moment is not None and not _EARLIEST <= moment.date() <= _LATEST:
                    self.add_error(
                        "created_at",
                        f"Choose dates between {_EARLIEST.isoformat()} and {_LATEST.isoformat()}.",
                    )
                    break
        return cleaned


class EventFilterSet(django_filters.FilterSet):
    """Filters of the global event browser (see the module docstring for the indexes)."""

    user = django_filters.CharFilter(
        label="User",
        method="filter_user",
        max_length=150,
        help_text="A username, or #id for a deleted user.",
    )
    model = django_filters.ChoiceFilter(
        label="Model",
        method="filter_model",
        empty_label="All models",
        error_messages={"invalid_choice": "“%(value)s” is not a model whose history you may see."},
    )
    action = django_filters.ChoiceFilter(
        label="Action", choices=ACTION_CHOICES, method="filter_action", empty_label="Any action"
    )
    created_at = django_filters.DateFromToRangeFilter(
        label="Date",
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )
    object_id = django_filters.CharFilter(
        label="Object id", method="filter_object_id", max_length=100, help_text="With a model."
    )
    request_id = django_filters.CharFilter(
        label="Request id", method="filter_request_id", max_length=200
    )
    context_key = django_filters.ChoiceFilter(
        label="Context key", method="filter_nothing", empty_label="—"
    )
    context_value = django_filters.CharFilter(
        label="Context value", method="filter_context_value", max_length=500
    )
    q = django_filters.CharFilter(
        label="Search",
        method="filter_search",
        max_length=300,
        help_text="An exact request id, or an object as app.model:id (e.g. shop.order:42).",
    )

    class Meta:
        model = None
        fields: list[str] = []
        form = EventFilterForm

    def __init__(
        self,
        *args: Any,
        models: Iterable[type[models.Model]] = (),
        context_keys: Iterable[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.models_by_label = {model_label(m): m for m in models}
        # Choices come from the registry of tracked models the viewer may see: never a
        # DISTINCT scan of the events, and never a model the viewer may not see.
        self.filters["model"].extra["choices"] = sorted(
            ((label, model_title(m)) for label, m in self.models_by_label.items()),
            key=lambda choice: choice[1].lower(),
        )
        self.filters["context_key"].extra["choices"] = [(k, k) for k in context_keys]
        #: Messages for the page when a well-formed filter matches nothing (unknown user).
        self.notices: list[str] = []

    @property
    def form(self) -> forms.Form:
        form = super().form
        form.models_by_label = self.models_by_label
        return form

    # -- filters ---------------------------------------------------------------------------

    def filter_user(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        user_pk = self.resolve_user(value)
        if user_pk is None:
            self.notices.append(
                f"No user “{value}”. Type an existing username, or #id for a deleted user."
            )
            return queryset.none()
        return queryset.by_user(user_pk)

    def resolve_user(self, value: str) -> Any:
        """The primary key of the user ``value`` names (a username or ``#id``), or None."""
        match = _USER_PK_RE.match(value)
        if match:
            return int(match["pk"])
        user_model = get_user_model()
        return (
            user_model._default_manager.filter(**{user_model.USERNAME_FIELD: value})
            .values_list("pk", flat=True)
            .first()
        )

    def filter_model(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.across(self.models_by_label[value])

    def filter_action(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(action_q(value))

    def filter_object_id(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        model = self.models_by_label[self.form.cleaned_data["model"]]
        return queryset.tracks(model(pk=self.form.object_pk), follow=())

    def filter_request_id(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return with_key(queryset, "request_id", value)

    def filter_nothing(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset  # the key is applied together with its value

    def filter_context_value(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return with_key(queryset, self.form.cleaned_data["context_key"], value)

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        match = _OBJECT_RE.match(value)
        model = match and self.models_by_label.get(match["label"].lower())
        if model is not None:
            try:
                pk = object_pk(model, match["pk"])
            except ValidationError as exc:
                self.notices.append(exc.messages[0])
                return queryset.none()
            return queryset.tracks(model(pk=pk), follow=())
        # Anything else is taken as a request id: the only indexed free-text column.
        return with_key(queryset, "request_id", value)
