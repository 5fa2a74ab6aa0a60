"""Per-object history pages: timeline, one version, comparison of two versions."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import label_for_field, quote, unquote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from audit_admin import rendering, themes
from audit_admin.links import AdminLinks
from audit_admin.pages import admin_context
from audit_admin.pagination import paginate_lazily
from audit_app.diff import compare, current_data, field_changes
from audit_app.following import followed_relations
from audit_app.models import AuditEvent
from audit_app.reverting import matches_current

_KEY_RE = re.compile(r"^(?P<label>[a-z0-9_]+\.[a-z0-9_]+):(?P<id>[0-9]{1,18})$")


def parse_event_key(key: str) -> tuple[str, int]:
    """``"shop.orderevent:12"`` -> ("shop.orderevent", 12); Http404 when malformed."""
    match = _KEY_RE.match(key or "")
    if not match:
        raise Http404("Unknown version.")
    return match["label"], int(match["id"])


class HistoryPage:
    """One request for a history page: the admin, the request, the object (None on
    model-level pages such as the deleted list), its URLs and the viewer's permissions."""

    def __init__(self, model_admin: Any, request: HttpRequest, obj: Any) -> None:
        self.model_admin = model_admin
        self.admin_site = model_admin.admin_site
        self.request = request
        self.obj = obj
        self.opts = model_admin.opts
        self.can_revert = obj is not None and model_admin.has_revert_permission(request, obj)
        self.links = AdminLinks(request, self.admin_site)
        self._current: dict[str, dict[str, Any] | None] = {}
        self._newest: str | None = None

    def url(self, view: str, *args: Any) -> str:
        info = (self.admin_site.name, self.opts.app_label, self.opts.model_name)
        return reverse("{}:{}_{}_{}".format(*info, view), args=args)

    def version_url(self, event: AuditEvent) -> str:
        return self.url("audit_version", quote(self.obj.pk), event.id)

    def revert_url(self, event: AuditEvent) -> str | None:
        """The revert of the object to ``event``'s version: None when the viewer may not
        revert, or when the object already matches that version (nothing to revert)."""
        if not self.can_revert or self.matches_current(event):
            return None
        return self.url("audit_revert", quote(self.obj.pk), event.id)

    def changeset_revert_url(self, changeset: Any) -> str | None:
        """The revert to right after ``changeset`` (its object's newest own event): for a
        model that follows relations, offered for every change set but the newest, as
        its rows may differ even where the object's own fields match."""
        event = changeset.anchor
        if not self.can_revert or (event is None and not followed_relations(self.opts.model)):
            return None
        if not followed_relations(self.opts.model):
            return self.revert_url(event)
        event = event or changeset.newest  # only followed rows changed
        if self._newest is None:
            events = self.model_admin.get_history_queryset(self.request, self.obj)
            self._newest = next(iter(events.changesets().page_keys(0, 1)), "")
        if changeset.key == self._newest:
            return None if changeset.anchor is None else self.revert_url(event)
        return self.url("audit_revert", quote(self.obj.pk), event.id)

    def matches_current(self, event: AuditEvent) -> bool:
        """Whether the object as it is now has every value a revert to ``event`` could set
        (one read of the live row per event table, however many versions are asked)."""
        event_model = event.source_event_model
        label = event_model._meta.label
        if label not in self._current:
            self._current[label] = current_data(self.obj, event_model)
        return matches_current(event_model, event.raw_data, self._current[label])

    def event(self, key: str, *, followed: bool = False) -> AuditEvent:
        """The event ``key`` of this object (or, with ``followed``, of one of its
        followed rows: a revert to its change set), or Http404."""
        label, event_id = parse_event_key(key)
        queryset = self.model_admin.get_history_queryset(self.request, self.obj)
        scope = queryset.query.audit_scope or {}
        if label not in scope:
            raise Http404("This version does not belong to this object.")
        event = queryset.across(label).filter(event_id=event_id).first()
        if event is None:
            raise Http404("Unknown version.")
        if not followed and not self.is_own(event):
            # An event of a followed row (an item of the order): not a version of this object.
            raise Http404("This version does not belong to this object.")
        return event

    def is_own(self, event: AuditEvent) -> bool:
        """Whether ``event`` is of this object itself (not of a followed row)."""
        concrete = self.opts.concrete_model
        tracked = event.tracked_model._meta.concrete_model
        own_table = tracked is concrete or tracked in concrete._meta.get_parent_list()
        return own_table and event.obj_id == str(self.obj.pk)

    def base_context(self, title: str) -> dict[str, Any]:
        context = {
            **admin_context(self.model_admin, self.request, title),
            "object": self.obj,
            "preserved_filters": self.model_admin.get_preserved_filters(self.request),
            "changelist_url": self.url("changelist"),
            "can_revert": self.can_revert,
        }
        if self.obj is not None:
            pk = quote(self.obj.pk)
            context.update(
                history_url=self.url("history", pk),
                change_url=self.url("change", pk),
                compare_url=self.url("audit_compare", pk),
            )
        return context

    def template(self, name: str) -> list[str]:
        """Per-model, per-app, the theme's, then default template names."""
        return [
            f"audit_admin/{self.opts.app_label}/{self.opts.model_name}/{name}",
            f"audit_admin/{self.opts.app_label}/{name}",
            *themes.template_names(name),
        ]


def object_or_404(model_admin: Any, request: HttpRequest, object_id: str) -> Any:
    """The object, if it exists and the viewer may see its history; Http404 otherwise."""
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None or not model_admin.has_history_permission(request, obj):
        # The same answer for "missing" and "not yours": no probing for ids.
        raise Http404(f"No {model_admin.opts.verbose_name} with that id.")
    return obj


def log_entries_before_tracking(obj: Any) -> list[LogEntry]:
    """Django admin log entries of ``obj`` older than its first recorded event."""
    first = AuditEvent.objects.from_primary().tracks(obj, follow=()).without_diffs()
    first = first.order_by("created_at", "event_id")
    first = first.values_list("created_at", flat=True).first()
    entries = LogEntry.objects.filter(
        object_id=str(obj.pk),
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
    ).select_related("user")
    if first is not None:
        entries = entries.filter(action_time__lt=first)
    return list(entries.order_by("-action_time")[:200])


def history_view(
    model_admin: Any, request: HttpRequest, object_id: str, extra_context: Any = None
) -> HttpResponse:
    obj = object_or_404(model_admin, request, object_id)
    history = HistoryPage(model_admin, request, obj)
    events = model_admin.get_history_queryset(request, obj)
    filterset = model_admin.get_history_filterset_class(request)(
        request.GET or None,
        queryset=events,
        field_choices=model_admin.get_history_field_choices(request, obj),
    )
    status = 200
    if filterset.is_bound and not filterset.is_valid():
        events, status = events.none(), 400
    changesets = events.changesets() if status == 400 else filterset.qs.changesets(events=events)
    table = model_admin.get_history_table_class(request)(changesets, history=history)
    paginate_lazily(table, request, model_admin.get_history_paginate_by(request))
    context = {
        **history.base_context(_("Change history: %s") % obj),
        "table": table,
        "filter": filterset,
        "action_list": log_entries_before_tracking(obj),
        **(extra_context or {}),
    }
    return TemplateResponse(
        request, history.template("object_history.html"), context, status=status
    )


def fieldset_rows(
    model_admin: Any, request: HttpRequest, obj: Any, data: dict[str, Any], masked: Any
) -> list[Any]:
    """The version's values laid out like the change form's fieldsets."""
    changes = field_changes(type(obj), None, data, masked=masked, only_changed=False)
    shown = {s.name: s for s in rendering.prepare(changes, request, model_admin.admin_site)}
    sections, placed = [], set()
    for title, options in model_admin.get_fieldsets(request, obj):
        rows = []
        for entry in options.get("fields", ()):
            for name in entry if isinstance(entry, (list, tuple)) else (entry,):
                placed.add(name)
                rows.append((name, _label(model_admin, name), shown.get(name)))
        sections.append((title, rows))
    rest = [(n, _label(model_admin, n), s) for n, s in shown.items() if n not in placed]
    other = [row for row in rest if not row[2].retired]
    if other:
        sections.append((_("Other recorded fields"), other))
    removed = [(n, capfirst(s.verbose_name), s) for n, _text, s in rest if s.retired]
    if removed:
        sections.append((_("Fields the model no longer has"), removed))
    return sections


def _label(model_admin: Any, name: str) -> str:
    """What the change form labels the field ``name`` with (its verbose name)."""
    try:
        return capfirst(label_for_field(name, model_admin.model, model_admin))
    except (AttributeError, FieldDoesNotExist):
        return capfirst(name.replace("_", " "))


def version_view(
    model_admin: Any, request: HttpRequest, object_id: str, event_key: str
) -> HttpResponse:
    obj = object_or_404(model_admin, request, object_id)
    history = HistoryPage(model_admin, request, obj)
    event = history.event(event_key)
    masked = getattr(event.source_event_model, "audit_masked", ())
    context = {
        **history.base_context(
            _("%(object)s as of %(time)s")
            % {"object": obj, "time": rendering.when(event.created_at)}
        ),
        "event": event,
        "event_time": rendering.time_html(event.created_at),
        "sections": fieldset_rows(model_admin, request, obj, event.data, masked),
        "revert_url": history.revert_url(event),
        "matches_current": history.matches_current(event),
    }
    return TemplateResponse(request, history.template("object_version.html"), context)


def _version_title(event: AuditEvent | None) -> str:
    """A compare column's header: the version's time to the second and its author."""
    if event is None:
        return _("Current")
    when = rendering.when(event.created_at)
    if event.username:
        return _("Version of %(time)s by %(user)s") % {"time": when, "user": event.username}
    return _("Version of %(time)s") % {"time": when}


def compare_view(model_admin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    obj = object_or_404(model_admin, request, object_id)
    history = HistoryPage(model_admin, request, obj)
    key_a, key_b = request.GET.get("a", ""), request.GET.get("b", "current")
    if not key_a or key_a == key_b:
        # The compare form was sent without a "from" version (or with one version twice):
        # back to the timeline, saying what to pick.
        model_admin.message_user(
            request,
            _("Pick a version to compare from (the first column), then press Compare."),
            messages.WARNING,
        )
        return HttpResponseRedirect(history.url("history", quote(obj.pk)))
    a = history.event(key_a)
    masked = a.source_event_model.audit_masked
    if key_b == "current":
        b, data_b = None, current_data(obj, a.source_event_model)
    else:
        b = history.event(key_b)
        if b.event_model != a.event_model:
            context = {
                **history.base_context(_("Compare versions")),
                "error": _("Choose two versions of the same table."),
            }
            return TemplateResponse(
                request, history.template("object_compare.html"), context, status=400
            )
        if (b.created_at, b.event_id) < (a.created_at, a.event_id):
            a, b = b, a
        data_b = b.raw_data
    changes = rendering.prepare(
        compare(type(obj), a.raw_data, data_b, masked=masked), request, history.admin_site
    )
    context = {
        **history.base_context(_("Compare versions of %(object)s") % {"object": obj}),
        "a": a,
        "b": b,
        "diff": rendering.render_changes(
            changes, before=_version_title(a), after=_version_title(b)
        ),
        "revert_url": history.revert_url(a),
    }
    return TemplateResponse(request, history.template("object_compare.html"), context)
