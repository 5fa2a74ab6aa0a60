"""The django-tables2 tables of the history pages: one object's timeline, deleted objects."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django_tables2.data import TableListData

from audit_admin import context_lines, rendering
from audit_admin.changeset_rendering import ChangeSetRenderer
from audit_admin.table_base import AuditTable
from audit_app.changesets import ChangeSet, ChangeSets
from audit_app.models import AuditEvent

NO_USER = mark_safe('<span class="audit-unknown">no user recorded</span>')


def timeline_context(
    meta: dict[str, Any], sources: dict[str, context_lines.SourceVersion] | None = None
) -> SafeString:
    """What the timeline shows of an event's context: revert source, reason, request."""
    return context_lines.join_lines(
        [
            context_lines.action_line(meta, sources),
            context_lines.reason_line(meta),
            context_lines.url_line(meta, 80),
            context_lines.request_line(meta),
            context_lines.command_line(meta),
        ]
    )


class ChangeSetData(TableListData):
    """Change sets as a table's rows, read a page at a time (django-tables2 would turn
    any other sequence into a list of every row)."""

    def __init__(self, changesets: ChangeSets) -> None:
        super().__init__(changesets)


def _row_id(record: ChangeSet) -> str:
    event = record.anchor or record.newest
    return f"event-{event.event_model.lower()}-{event.event_id}"


def _own_version(changeset: ChangeSet) -> Any:
    """What the object's own events in a change set changed, as one event would show it:
    the merged diff (or, when the set created the object, its recorded values)."""
    if len(changeset.own) == 1:
        return changeset.own[0]
    last = changeset.own[-1]
    return SimpleNamespace(
        id=last.id,
        obj_model=last.obj_model,
        event_model=last.event_model,
        data=last.data,
        diff=changeset.own_diff,
    )


class HistoryTable(AuditTable):
    """One object's timeline, newest first: one row per change set (the object's and its
    followed rows' events written in one context). Ordering is fixed."""

    compare = tables.Column(empty_values=(), verbose_name="Compare", orderable=False)
    event = tables.Column(empty_values=(), verbose_name="When and who", orderable=False)
    changes = tables.Column(empty_values=(), verbose_name="Changes", orderable=False)
    tools = tables.Column(empty_values=(), verbose_name="", orderable=False)

    class Meta:
        model = AuditEvent
        fields = ("compare", "event", "changes", "tools")
        template_name = "audit_admin/includes/table.html"
        attrs = {"class": "audit-timeline"}
        row_attrs = {"id": _row_id}
        empty_text = "No recorded changes."

    def __init__(self, *args: Any, history: Any, **kwargs: Any) -> None:
        # ``history``: the view's helper with the admin, request, permissions and URLs.
        self.history = history
        self._shown: dict[str, list[rendering.ShownChange]] | None = None
        self._rows: ChangeSetRenderer | None = None
        self._sources: dict[str, context_lines.SourceVersion] = {}
        self._csrf: SafeString | None = None
        if args and isinstance(args[0], ChangeSets):
            args = (ChangeSetData(args[0]), *args[1:])
        super().__init__(*args, **kwargs)

    def _resolve(self) -> None:
        if self._shown is None:
            # First cell of the page: the FK labels and revert sources of every row at once.
            rows = self.page.object_list if hasattr(self, "page") else self.rows
            records = [row.record for row in rows]
            versions = [_own_version(r) for r in records if r.own]
            self._shown = rendering.prepare_per_event(
                versions, self.history.request, self.history.admin_site
            )
            self._rows = ChangeSetRenderer(records, self.history.request, self.history.admin_site)
            self._sources = context_lines.source_versions(r.metadata for r in records)

    def render_compare(self, record: ChangeSet) -> str:
        if record.anchor is None:
            return ""
        return format_html(
            '<input type="radio" name="a" value="{0}" form="audit-compare" aria-label="From">'
            '<input type="radio" name="b" value="{0}" form="audit-compare" aria-label="To">',
            record.anchor.id,
        )

    def render_event(self, record: ChangeSet) -> str:
        self._resolve()
        meta = record.metadata
        command = meta.get("command")
        who = record.username or (f"command {command}" if command else "")
        if who:
            who = rendering.text(who)
            user_url = self.history.links.user_url(meta.get("user"))
            if user_url:
                who = format_html('<a href="{}">{}</a>', user_url, who)
        return format_html(
            '<div class="audit-event">\n'
            '<div class="audit-event-head"><span class="audit-action audit-action-{0}">{0}</span>'
            ' {1} <span class="audit-who">{2}</span></div>\n{3}</div>',
            record.action,
            rendering.time_html(record.created_at),
            who or NO_USER,
            timeline_context(meta, self._sources),
        )

    def render_changes(self, record: ChangeSet) -> str:
        self._resolve()
        rows = self._rows.render(record)
        if not record.own:
            return rows or rendering.NO_CHANGES
        own = rendering.collapsed_changes(
            self._shown.get(record.anchor.id, []), first=record.own_diff is None
        )
        return format_html("{}{}", own, rows)

    def render_tools(self, record: ChangeSet) -> str:
        revert_url = self.history.changeset_revert_url(record)
        view = (
            format_html(
                '<a class="audit-view-version" href="{}">View</a>',
                self.history.version_url(record.anchor),
            )
            if record.anchor is not None
            else ""
        )
        return format_html(
            '<div class="audit-tools">{}{}</div>',
            view,
            format_html(
                '<form method="post" action="{}" class="audit-inline-form">{}\n'
                '<button type="submit" class="audit-revert-button">Revert to this version</button>'
                "</form>",
                revert_url,
                self._csrf_input(),
            )
            if revert_url
            else "",
        )

    def _csrf_input(self) -> SafeString:
        if self._csrf is None:
            self._csrf = rendering.csrf_input(self.history.request)
        return self._csrf


class DeletedTable(AuditTable):
    """Deleted objects of one model: the last recorded state of each."""

    obj_id = tables.Column(verbose_name="ID", orderable=False)
    label = tables.Column(empty_values=(), verbose_name="Object", orderable=False)
    created_at = tables.Column(verbose_name="Deleted at", orderable=False)
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

    def render_created_at(self, record: AuditEvent) -> str:
        return rendering.time_html(record.created_at)

    def render_label(self, record: AuditEvent) -> str:
        return rendering.deleted_label(self.tracked_model, record)

    def render_user(self, record: AuditEvent) -> str:
        return record.username or "—"

    def render_tools(self, record: AuditEvent) -> str:
        if not self.restore:
            return ""
        return format_html(
            '<form method="post" action="{}" class="audit-inline-form">{}\n'
            '<button type="submit" class="audit-restore-button">Restore</button></form>',
            self.history.url("audit_restore", record.id),
            rendering.csrf_input(self.history.request),
        )
