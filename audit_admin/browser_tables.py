"""The event browser's django-tables2 table.

A page is resolved in bulk when its first cell renders: the objects' labels (one query
per model on the page), the users (one query), the foreign-key labels of the diffs (one
query per related model). No cell runs a query of its own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import django_tables2 as tables
from django.apps import apps
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from audit_admin import context_lines, rendering
from audit_admin.links import AdminLinks, admin_url, model_admin_for
from audit_admin.table_base import AuditTable
from audit_app.diff import to_python
from audit_app.models import AuditEvent

NONE = mark_safe('<span class="audit-none">—</span>')
DELETED_TAG = mark_safe(' <span class="audit-deleted-tag">deleted</span>')


@dataclass
class ObjectInfo:
    """What a row shows of its object: label, whether it exists, the viewer's links."""

    label: str
    exists: bool
    change_url: str | None = None
    history_url: str | None = None
    version_url: str | None = None


class PageResolver:
    """Everything the rows of one page need from the database, fetched in bulk."""

    def __init__(self, request: HttpRequest, admin_site: Any, browser_url: str) -> None:
        self.request = request
        self.admin_site = admin_site
        self.browser_url = browser_url
        self.links = AdminLinks(request, admin_site)
        self.objects: dict[str, ObjectInfo] = {}
        self.shown: dict[str, list[rendering.ShownChange]] = {}
        self.sources: dict[str, context_lines.SourceVersion] = {}
        self.usernames: dict[Any, str] = {}
        self._model_links: dict[str, SafeString] = {}

    def filter_url(self, **params: Any) -> str:
        """The browser filtered by ``params`` only (a fresh question, not a refinement)."""
        return f"{self.browser_url}?{urlencode(params)}"

    def model_link(self, label: str) -> SafeString:
        """The model's name, linked to the browser filtered by that model (once per model)."""
        if label not in self._model_links:
            opts = apps.get_model(label)._meta
            self._model_links[label] = format_html(
                '<a class="audit-model-link" href="{}">{}</a>',
                self.filter_url(model=opts.label_lower),
                str(opts.verbose_name).capitalize(),
            )
        return self._model_links[label]

    def resolve(self, records: list[AuditEvent]) -> None:
        self._resolve_objects(records)
        self._resolve_changes(records)
        self._resolve_users(records)
        self.sources = context_lines.source_versions(r.metadata for r in records)

    # -- objects ---------------------------------------------------------------------------

    def _url(self, model_admin: Any, view: str, *args: Any) -> str | None:
        return admin_url(self.admin_site, model_admin.model, view, *args)

    def _resolve_objects(self, records: list[AuditEvent]) -> None:
        by_model: dict[str, list[AuditEvent]] = defaultdict(list)
        for record in records:
            by_model[record.obj_model].append(record)
        for label, group in by_model.items():
            model = apps.get_model(label)
            pk_field = model._meta.concrete_model._meta.pk
            found = model._default_manager.in_bulk({to_python(pk_field, r.obj_id) for r in group})
            live = {str(pk): obj for pk, obj in found.items()}
            model_admin = model_admin_for(self.admin_site, model)
            for record in group:
                self.objects[record.id] = self._object_info(model, model_admin, record, live)

    def _object_info(
        self, model: type[models.Model], model_admin: Any, record: AuditEvent, live: dict
    ) -> ObjectInfo:
        obj = live.get(record.obj_id)
        if obj is None:
            return ObjectInfo(rendering.deleted_label(model, record), exists=False)
        info = ObjectInfo(str(obj), exists=True)
        if model_admin is None:
            return info
        pk = quote(obj.pk)
        if model_admin.has_view_or_change_permission(self.request, obj):
            info.change_url = self._url(model_admin, "change", pk)
        has_history = getattr(model_admin, "has_history_permission", None)
        if has_history is not None and has_history(self.request, obj):
            info.history_url = self._url(model_admin, "history", pk)
            info.version_url = self._url(model_admin, "audit_version", pk, record.id)
        return info

    # -- diffs -------------------------------------------------------------------------------

    def _resolve_changes(self, records: list[AuditEvent]) -> None:
        self.shown = rendering.prepare_per_event(records, self.request, self.admin_site)

    # -- users -------------------------------------------------------------------------------

    def _resolve_users(self, records: list[AuditEvent]) -> None:
        pks = {r.metadata.get("user") for r in records} - {None}
        if not pks:
            return
        user_model = get_user_model()
        pk_field = user_model._meta.pk
        try:
            pks = {pk_field.to_python(pk) for pk in pks}
        except (ValidationError, TypeError):  # foreign metadata: leave the users unlinked
            return
        self.usernames = dict(
            user_model._default_manager.filter(pk__in=pks).values_list(
                "pk", user_model.USERNAME_FIELD
            )
        )

    def user_of(self, record: AuditEvent) -> tuple[Any, str | None]:
        """(pk or None, username now) of the record's user; None when deleted or unknown."""
        pk = record.metadata.get("user")
        if pk is None:
            return None, None
        try:
            pk = get_user_model()._meta.pk.to_python(pk)
        except (ValidationError, TypeError):
            return None, None
        return pk, self.usernames.get(pk)


def _row_id(record: AuditEvent) -> str:
    return f"event-{record.event_model.lower()}-{record.event_id}"


class EventTable(AuditTable):
    """The global event stream, newest first (the order is the view's, never a column's).

    Every column has a ``render_<column>`` method, which ``AuditTable`` calls directly.
    Computed columns still read ``id``: django-tables2's own cell rendering resolves a
    column's accessor first, and ``AuditEvent.user`` would cost a query per row.
    """

    selected = tables.CheckBoxColumn(
        accessor="id",
        attrs={
            "th": {"class": "action-checkbox-column"},
            "td": {"class": "action-checkbox"},
            "th__input": {"id": "action-toggle", "aria-label": "Select all events of this page"},
        },
    )
    created_at = tables.Column(verbose_name="Time", orderable=False)
    user = tables.Column(accessor="id", empty_values=(), verbose_name="User", orderable=False)
    action = tables.Column(accessor="id", empty_values=(), verbose_name="Action", orderable=False)
    model = tables.Column(accessor="id", empty_values=(), verbose_name="Model", orderable=False)
    object = tables.Column(accessor="id", empty_values=(), verbose_name="Object", orderable=False)
    changes = tables.Column(
        accessor="id", empty_values=(), verbose_name="Changed fields", orderable=False
    )
    request = tables.Column(accessor="id", empty_values=(), verbose_name="Request", orderable=False)

    class Meta:
        sequence = (
            "selected", "created_at", "user", "action", "model", "object", "changes", "request",
        )  # fmt: skip
        template_name = "audit_admin/includes/table.html"
        # Django's actions.js finds the table by this id (select all, counter).
        attrs = {"id": "result_list", "class": "audit-events"}
        row_attrs = {"id": _row_id, "data-event": lambda record: record.id}
        orderable = False
        empty_text = "No events match."

    def __init__(self, *args: Any, resolver: PageResolver, **kwargs: Any) -> None:
        self.resolver = resolver
        self._resolved = False
        super().__init__(*args, **kwargs)

    def _page(self) -> PageResolver:
        if not self._resolved:
            # First cell of the page: fetch what every row needs at once.
            rows = self.page.object_list if hasattr(self, "page") else self.rows
            self.resolver.resolve([row.record for row in rows])
            self._resolved = True
        return self.resolver

    def render_selected(self, record: AuditEvent) -> str:
        # Django's actions.js finds the boxes by this class and name.
        return format_html(
            '<input type="checkbox" name="{0}" value="{1}" class="action-select"'
            ' aria-label="Select event {1}">',
            ACTION_CHECKBOX_NAME,
            record.id,
        )

    def render_created_at(self, record: AuditEvent) -> str:
        url = self._page().objects[record.id].version_url
        moment = rendering.time_html(record.created_at)
        if url:
            return format_html('<a class="audit-version-link" href="{}">{}</a>', url, moment)
        return moment

    def render_user(self, record: AuditEvent) -> str:
        page = self._page()
        pk, current = page.user_of(record)
        name = record.username
        if not name and record.metadata.get("command"):
            name = f"command: {record.metadata['command']}"
        if not name:
            return NONE
        name = rendering.text(name)
        if pk is None:
            shown = format_html('<span class="audit-user-name">{}</span>', name)
        else:
            shown = format_html(
                '<a class="audit-user-filter" href="{}" title="Show every event of this user">'
                "{}</a>",
                page.filter_url(user=current or f"#{pk}"),
                name,
            )
        # Only users that still exist get a link to their page.
        user_page = page.links.user_url(pk) if current is not None else None
        if not user_page:
            return shown
        return format_html(
            '{} <a class="audit-user-admin" href="{}" aria-label="User page of {}"'
            ' title="User page">↗</a>',
            shown,
            user_page,
            name,
        )

    def render_action(self, record: AuditEvent) -> str:
        return format_html('<span class="audit-action audit-action-{0}">{0}</span>', record.action)

    def render_model(self, record: AuditEvent) -> str:
        return self._page().model_link(record.obj_model)

    def render_object(self, record: AuditEvent) -> str:
        info = self._page().objects[record.id]
        if info.change_url:
            label = format_html(
                '<a class="audit-object-link" href="{}">{}</a>', info.change_url, info.label
            )
        else:
            label = format_html('<span class="audit-object-label">{}</span>', info.label)
        return format_html(
            '<div class="audit-object">{}{}</div>{}',
            label,
            "" if info.exists else DELETED_TAG,
            format_html(
                '<div class="audit-object-tools"><a class="audit-history-link" href="{}">'
                "History</a></div>",
                info.history_url,
            )
            if info.history_url
            else "",
        )

    def render_changes(self, record: AuditEvent) -> str:
        shown = self._page().shown.get(record.id, [])
        if not shown:
            return NONE
        return rendering.collapsed_changes(shown, first=record.diff is None)

    def render_request(self, record: AuditEvent) -> str:
        meta = record.metadata
        request_id = meta.get("request_id")
        request_link = (
            format_html(
                '<a class="audit-request-link" href="{}" title="Everything this request'
                ' changed"><code>{}</code></a>',
                self._page().filter_url(request_id=request_id),
                rendering.truncate(request_id, 40),
            )
            if request_id
            else None
        )
        return context_lines.join_lines(
            [
                request_link,
                context_lines.url_line(meta, 60),
                context_lines.command_line(meta),
                context_lines.action_line(meta, self._page().sources),
                context_lines.reason_line(meta, 120),
            ]
        )
