"""``AuditHistoryMixin``: history, versions, compare, revert and restore for a ModelAdmin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.loader import select_template
from django.urls import path, reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from audit_admin import history, reverts, themes
from audit_admin.history_filters import HistoryFilterSet
from audit_admin.history_tables import HistoryTable
from audit_admin.links import event_browser_url
from audit_app.column_history import retired_fields
from audit_app.models import AuditEvent
from audit_app.replicas import primary_reads


class AuditHistoryMixin:
    """Add django-audit-admin's history pages to a ModelAdmin of a tracked model.

    The change form's "History" button opens our timeline (Django's ``history_view``
    URL and context names are kept). Every declarative attribute has a ``get_*`` hook
    taking the request; permissions are ``has_*_permission`` hooks.

    Every page here reads history from the primary, never from ``AUDIT_READ_DATABASE``:
    the person who just saved sees the change, and reverts are checked against the
    history as it is.
    """

    history_paginate_by = 25
    history_filterset_class = HistoryFilterSet
    history_table_class = HistoryTable
    #: The changelist template this admin would use without the mixin (None: the
    #: admin's usual per-model lookup). Our changelist template extends it.
    audit_base_change_list_template: str | None = None
    change_list_template = "audit_admin/change_list.html"

    # -- permissions ---------------------------------------------------------------------

    def has_history_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """View the timeline, versions and comparisons (view or change permission)."""
        return self.has_view_or_change_permission(request, obj)

    def has_revert_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Revert an object: change permission plus ``audit_app.revert_auditevent``."""
        return self.has_change_permission(request, obj) and request.user.has_perm(
            "audit_app.revert_auditevent"
        )

    def has_restore_permission(self, request: HttpRequest) -> bool:
        """Restore a deleted object: add permission plus ``audit_app.revert_auditevent``."""
        return self.has_add_permission(request) and request.user.has_perm(
            "audit_app.revert_auditevent"
        )

    # -- hooks -----------------------------------------------------------------------------

    def get_history_queryset(self, request: HttpRequest, obj: Any) -> Any:
        """The events of ``obj`` shown on its timeline (its parents' tables included)."""
        # Explicitly: the page renders after the view has returned.
        return AuditEvent.objects.from_primary().tracks(obj).select_related("context")

    def get_history_paginate_by(self, request: HttpRequest) -> int:
        return self.history_paginate_by

    def get_history_filterset_class(self, request: HttpRequest) -> type:
        return self.history_filterset_class

    def get_history_table_class(self, request: HttpRequest) -> type:
        return self.history_table_class

    def get_history_field_choices(self, request: HttpRequest, obj: Any) -> list[tuple[str, str]]:
        """Fields offered by the "field changed" filter: every recorded field, those the
        model no longer has included (after the others)."""
        opts = self.model._meta
        choices: dict[str, str] = {}
        retired: dict[str, str] = {}
        for model in [self.model, *opts.concrete_model._meta.get_parent_list()]:
            event_model = model.__dict__.get("audit_event_model")
            if event_model is None:
                continue
            for name, _column in event_model.audit_fields[1:]:
                choices.setdefault(name, capfirst(opts.get_field(name).verbose_name))
            for name, field in retired_fields(event_model).items():
                label = _("%s (no longer a field)") % capfirst(field.verbose_name)
                retired.setdefault(name, label)
        return [*choices.items(), *((n, v) for n, v in retired.items() if n not in choices)]

    # -- views -----------------------------------------------------------------------------

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        with primary_reads():
            return history.history_view(self, request, object_id, extra_context)

    def audit_version_view(
        self, request: HttpRequest, object_id: str, event_key: str
    ) -> HttpResponse:
        with primary_reads():
            return history.version_view(self, request, object_id, event_key)

    def audit_compare_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        with primary_reads():
            return history.compare_view(self, request, object_id)

    def audit_revert_view(
        self, request: HttpRequest, object_id: str, event_key: str
    ) -> HttpResponse:
        with primary_reads():
            return reverts.revert_view(self, request, object_id, event_key)

    def audit_deleted_view(self, request: HttpRequest) -> HttpResponse:
        with primary_reads():
            return reverts.deleted_view(self, request)

    def audit_restore_view(self, request: HttpRequest, event_key: str) -> HttpResponse:
        with primary_reads():
            return reverts.restore_view(self, request, event_key)

    def get_urls(self) -> list[Any]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}_audit"
        wrap = self.admin_site.admin_view
        # Before Django's own patterns, whose "<path:object_id>/" catches everything.
        return [
            path("deleted/", wrap(self.audit_deleted_view), name=f"{prefix}_deleted"),
            path(
                "deleted/<str:event_key>/restore/",
                wrap(self.audit_restore_view),
                name=f"{prefix}_restore",
            ),
            path(
                "<path:object_id>/history/compare/",
                wrap(self.audit_compare_view),
                name=f"{prefix}_compare",
            ),
            path(
                "<path:object_id>/history/<str:event_key>/revert/",
                wrap(self.audit_revert_view),
                name=f"{prefix}_revert",
            ),
            path(
                "<path:object_id>/history/<str:event_key>/",
                wrap(self.audit_version_view),
                name=f"{prefix}_version",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        opts = self.opts
        base = self.audit_base_change_list_template or select_template(
            [
                f"admin/{opts.app_label}/{opts.model_name}/change_list.html",
                f"admin/{opts.app_label}/change_list.html",
                "admin/change_list.html",
            ]
        )
        context = {
            "audit_base_change_list_template": base,
            "audit_deleted_url": reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_audit_deleted"
            ),
            "audit_events_url": event_browser_url(
                request, self.admin_site, model=self.model._meta.label_lower
            ),
            **(extra_context or {}),
        }
        response = super().changelist_view(request, extra_context=context)
        # Our changelist template, in the active theme's version (docs/admin.md#themes).
        return themes.use_theme(
            response, AuditHistoryMixin.change_list_template, "change_list.html"
        )


class AuditModelAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """A ModelAdmin with django-audit-admin's history pages."""
