"""django-tables2 tables of events."""

from __future__ import annotations

from typing import Any

import django_tables2 as tables
from django.template.loader import render_to_string
from django.utils.html import format_html

from audit_admin import rendering
from audit_app.diff import event_changes
from audit_app.models import AuditEvent


class HistoryTable(tables.Table):
    """One object's timeline, newest first. Ordering is fixed (no sortable headers)."""

    compare = tables.Column(empty_values=(), verbose_name="Compare", orderable=False)
    event = tables.Column(empty_values=(), verbose_name="When and who", orderable=False)
    changes = tables.Column(empty_values=(), verbose_name="Changes", orderable=False)
    tools = tables.Column(empty_values=(), verbose_name="", orderable=False)

    class Meta:
        model = AuditEvent
        fields = ("compare", "event", "changes", "tools")
        template_name = "audit_admin/includes/table.html"
        attrs = {"class": "audit-timeline"}
        row_attrs = {"id": lambda record: f"event-{record.event_model.lower()}-{record.event_id}"}
        empty_text = "No recorded changes."

    def __init__(self, *args: Any, history: Any, **kwargs: Any) -> None:
        # ``history``: the view's helper with the admin, request, permissions and URLs.
        self.history = history
        self._shown: dict[str, list[rendering.Shown]] | None = None
        super().__init__(*args, **kwargs)

    def _shown_for(self, record: AuditEvent) -> list[rendering.Shown]:
        if self._shown is None:
            # First cell of the page: resolve every FK label of the page at once.
            rows = self.page.object_list if hasattr(self, "page") else self.rows
            records = [row.record for row in rows]
            per_record = {r.id: event_changes(r) for r in records}
            shown = rendering.prepare(
                [c for changes in per_record.values() for c in changes],
                self.history.request,
                self.history.admin_site,
            )
            by_change = {id(s.change): s for s in shown}
            self._shown = {
                key: [by_change[id(c)] for c in changes] for key, changes in per_record.items()
            }
        return self._shown.get(record.id, [])

    def render_compare(self, record: AuditEvent) -> str:
        return format_html(
            '<input type="radio" name="a" value="{0}" form="audit-compare" aria-label="From">'
            '<input type="radio" name="b" value="{0}" form="audit-compare" aria-label="To">',
            record.id,
        )

    def render_event(self, record: AuditEvent) -> str:
        command = record.metadata.get("command")
        return render_to_string(
            "audit_admin/includes/event_cell.html",
            {
                "event": record,
                "who": record.username or (f"command {command}" if command else ""),
                "user_url": self.history.user_url(record),
                "meta": record.metadata,
            },
        )

    def render_changes(self, record: AuditEvent) -> str:
        return rendering.render_changes(self._shown_for(record), compact=True)

    def render_tools(self, record: AuditEvent) -> str:
        return render_to_string(
            "audit_admin/includes/event_tools.html",
            {
                "record": record,
                "version_url": self.history.version_url(record),
                "revert_url": self.history.revert_url(record),
            },
            request=self.history.request,
        )


class DeletedTable(tables.Table):
    """Deleted objects of one model: the last recorded state of each."""

    obj_id = tables.Column(verbose_name="ID", orderable=False)
    label = tables.Column(empty_values=(), verbose_name="Object", orderable=False)
    created_at = tables.DateTimeColumn(
        verbose_name="Deleted at", orderable=False, format="DATETIME_FORMAT"
    )
    user = tables.Column(empty_values=(), verbose_name="Deleted by", orderable=False)
    tools = tables.Column(empty_values=(), verbose_name="", orderable=False)

    class Meta:
        model = AuditEvent
        fields = ("obj_id", "label", "created_at", "user", "tools")
        template_name = "audit_admin/includes/table.html"
        attrs = {"class": "audit-deleted"}
        empty_text = "No deleted objects."

    def __init__(self, *args: Any, model: Any, restore: bool, history: Any, **kwargs: Any) -> None:
        self.tracked_model, self.restore, self.history = model, restore, history
        super().__init__(*args, **kwargs)

    def render_label(self, record: AuditEvent) -> str:
        from audit_admin.reverts import deleted_label

        return deleted_label(self.tracked_model, record)

    def render_user(self, record: AuditEvent) -> str:
        return record.username or "—"

    def render_tools(self, record: AuditEvent) -> str:
        if not self.restore:
            return ""
        return render_to_string(
            "audit_admin/includes/restore_tools.html",
            {"restore_url": self.history.url("audit_restore", record.id)},
            request=self.history.request,
        )
