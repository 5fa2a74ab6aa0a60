"""``AuditEventAdmin``: the global event browser (who changed what, across the system).

A read-only ModelAdmin for ``audit_app.models.AuditEvent`` with its own changelist:
a django-filter FilterSet in the sidebar, a django-tables2 table paginated lazily (no
``COUNT(*)`` at any size: the total is the planner's estimate, shown as "about N"),
streamed CSV / JSON Lines export and admin actions (export, bulk revert).

Visibility comes first: ``get_queryset`` keeps only the event tables of models the
viewer may view, and rows, filter choices, estimates and exports all start from it.
"""

from __future__ import annotations

from functools import reduce
from operator import or_
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet, PermissionDenied
from django.core.paginator import EmptyPage
from django.db import models
from django.db.models import Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats
from django_tables2.paginators import LazyPaginator

from audit_admin import actions, conf, themes
from audit_admin.browser_filters import EventFilterSet
from audit_admin.browser_tables import EventTable, PageResolver
from audit_admin.export import export_response
from audit_admin.history import parse_event_key
from audit_admin.integrity import IntegrityBox, integrity_box
from audit_admin.pages import admin_context
from audit_admin.pagination import InvalidPageNumber, page_number
from audit_admin.permissions import may_change_model, may_view_model
from audit_admin.replica_notice import ReplicaNotice, replica_notice
from audit_app.models import AuditEvent
from audit_app.registry import tracked_models

# Index-backed orders only: each event table has a (created_at, id) index.
ORDERINGS = {
    "newest": ("-created_at", "-event_id"),
    "oldest": ("created_at", "event_id"),
}
# More selected rows than this cannot come from a page of the browser.
MAX_SELECTED = 1000


class BadRequest(Exception):
    """Input the browser cannot serve; the message says why and what to do instead."""


class FilteredEvents:
    """The events one browser request asks for: its filter set, the filtered queryset,
    and what was wrong with the request (messages and the status to answer with)."""

    def __init__(self, filterset: Any, queryset: Any) -> None:
        self.filterset = filterset
        self.queryset = queryset
        self.errors: list[str] = []
        self.status = 200

    @property
    def notices(self) -> list[str]:
        return self.filterset.notices

    def refuse(self, message: str) -> None:
        """Serve an empty page with ``message`` and status 400."""
        self.errors.append(message)
        self.queryset = self.queryset.none()
        self.status = 400


class AuditEventAdmin(admin.ModelAdmin):
    """The global event browser: read-only, count-free, filtered by what the viewer may see.

    Every declarative attribute has a ``get_*`` hook taking the request; permissions
    are ``has_*_permission`` hooks.
    """

    list_per_page = 50
    filterset_class = EventFilterSet
    table_class = EventTable
    export_formats = ("csv", "jsonl")
    actions = [actions.export_selected_csv, actions.export_selected_jsonl, actions.revert_selected]
    #: Used before the template lookup list when set (as ``ModelAdmin`` does).
    change_list_template: str | None = None

    class Media:
        css = {"all": ("audit_admin/css/audit_admin.css", "audit_admin/css/events.css")}
        js = ("audit_admin/js/events.js",)

    # -- permissions -------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # events are written by the database, never by hand

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """View events: of at least one model the viewer may view (of ``obj``'s model)."""
        if obj is not None:
            return may_view_model(request.user, apps.get_model(obj.obj_model))
        return bool(self.get_visible_models(request))

    def has_module_permission(self, request: HttpRequest) -> bool:
        # Listed on the admin index for whoever may browse, even without a permission
        # of the audit_app app itself.
        return self.has_view_permission(request)

    def has_export_permission(self, request: HttpRequest) -> bool:
        """Export events: ``audit_app.export_auditevent`` (of the visible models only)."""
        return self.has_view_permission(request) and request.user.has_perm(
            "audit_app.export_auditevent"
        )

    def has_revert_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Revert from the browser: ``audit_app.revert_auditevent`` plus change permission
        on ``obj``'s model (on at least one visible model without ``obj``)."""
        if not request.user.has_perm("audit_app.revert_auditevent"):
            return False
        models_ = (
            [apps.get_model(obj.obj_model)] if obj is not None else self.get_visible_models(request)
        )
        return any(may_change_model(request.user, m) for m in models_)

    def has_verify_permission(self, request: HttpRequest) -> bool:
        """See the integrity of the history (sealing, verification):
        ``audit_app.verify_auditevent``."""
        return self.has_view_permission(request) and request.user.has_perm(
            "audit_app.verify_auditevent"
        )

    def has_user_search_permission(self, request: HttpRequest) -> bool:
        """Get username suggestions in the user filter: view permission on users."""
        user_model = get_user_model()
        user_admin = self.admin_site._registry.get(user_model)
        if user_admin is not None:
            return user_admin.has_view_or_change_permission(request)
        return may_view_model(request.user, user_model)

    # -- hooks -------------------------------------------------------------------------------

    def get_visible_models(self, request: HttpRequest) -> list[type[models.Model]]:
        """The tracked models whose events the viewer may see."""
        user = request.user
        return [m for m in tracked_models() if may_view_model(user, m)]

    def get_queryset(self, request: HttpRequest) -> Any:
        """The events the viewer may see, before any filter: everything starts here."""
        events = AuditEvent.objects.all()
        if not request.user.is_superuser:
            events = events.across(*self.get_visible_models(request))
        # The user and request columns read the context: one join, not a query per row.
        return events.select_related("context")

    def get_filterset_class(self, request: HttpRequest) -> type:
        return self.filterset_class

    def get_filterset(self, request: HttpRequest, queryset: Any) -> Any:
        return self.get_filterset_class(request)(
            request.GET or None,
            queryset=queryset,
            request=request,
            models=self.get_visible_models(request),
            context_keys=self.get_context_keys(request),
        )

    def get_table_class(self, request: HttpRequest) -> type:
        return self.table_class

    def get_list_per_page(self, request: HttpRequest) -> int:
        return self.list_per_page

    def get_context_keys(self, request: HttpRequest) -> tuple[str, ...]:
        """Context metadata keys offered by the key/value filter (a whitelist)."""
        return conf.context_keys()

    def get_export_formats(self, request: HttpRequest) -> tuple[str, ...]:
        return self.export_formats

    def get_browser_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        """Newest first, or oldest first with ``?sort=oldest``: both follow an index."""
        return ORDERINGS.get(request.GET.get("sort", ""), ORDERINGS["newest"])

    def get_integrity(self, request: HttpRequest) -> IntegrityBox | None:
        """The integrity line's facts, for those who may see them (else None)."""
        return integrity_box() if self.has_verify_permission(request) else None

    def get_replica_notice(self, request: HttpRequest) -> ReplicaNotice | None:
        """The line saying the page reads a replica and its lag (None: it reads the primary)."""
        return replica_notice()

    def get_template_names(self, request: HttpRequest, name: str) -> list[str]:
        """Per-model, the theme's, then default template names."""
        opts = self.opts
        return [f"audit_admin/{opts.app_label}/{opts.model_name}/events/{name}",
                *themes.template_names(f"events/{name}")]  # fmt: skip

    # -- the browser -------------------------------------------------------------------------

    def browser_url(self) -> str:
        return reverse(f"{self.admin_site.name}:audit_app_auditevent_changelist")

    def browse(self, request: HttpRequest) -> FilteredEvents:
        """Validate the filters and apply them to the visible events, in the chosen order."""
        base = self.get_queryset(request)
        filterset = self.get_filterset(request, base)
        state = FilteredEvents(filterset, base)
        if filterset.is_bound and not filterset.is_valid():
            for field, errors in filterset.form.errors.items():
                label = filterset.form.fields[field].label if field in filterset.form.fields else ""
                state.refuse(f"{label + ': ' if label else ''}{' '.join(errors)}")
            return state
        state.queryset = filterset.qs.order_by(*self.get_browser_ordering(request))
        return state

    def page_number(self, request: HttpRequest) -> int:
        try:
            return page_number(request.GET.get("page"), conf.max_page())
        except InvalidPageNumber as exc:
            raise BadRequest(
                f"{exc} To reach older events, filter by date or sort oldest first."
            ) from exc

    def querystring(self, request: HttpRequest, **changes: Any) -> str:
        """The current filters and order (no page) with ``changes``, as ``?...``."""
        params = request.GET.copy()
        params.pop("page", None)
        for key, value in changes.items():
            params.pop(key, None)
            if value is not None:
                params[key] = value
        encoded = params.urlencode()
        return f"?{encoded}" if encoded else ""

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self.response_browser_action(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "POST"])
        return self.render_browser(request, self.browse(request), extra_context)

    def render_browser(
        self, request: HttpRequest, state: FilteredEvents, extra_context: Any = None
    ) -> HttpResponse:
        per_page = self.get_list_per_page(request)
        try:
            page = self.page_number(request)
        except BadRequest as exc:
            state.refuse(str(exc))
            page = 1
        action_choices = self.get_action_choices(request, default_choices=[("", "---------")])
        has_actions = len(action_choices) > 1
        resolver = PageResolver(request, self.admin_site, self.browser_url())
        table_class = self.get_table_class(request)
        exclude = () if has_actions else ("selected",)
        table = table_class(state.queryset, resolver=resolver, exclude=exclude)
        try:
            table.paginate(paginator_class=LazyPaginator, per_page=per_page, page=page)
        except EmptyPage:
            state.notices.append(f"There are no events on page {page}; the last one comes earlier.")
            table = table_class(state.queryset.none(), resolver=resolver, exclude=exclude)
            table.paginate(paginator_class=LazyPaginator, per_page=per_page, page=1)
        total, total_kind = self.estimate(state.queryset, table, page, per_page)
        user_options_id = self.offer_user_suggestions(request, state.filterset)
        context = {
            **admin_context(self, request, "Audit events"),
            "filter": state.filterset,
            "search_field": state.filterset.form["q"],
            "sidebar_fields": [f for f in state.filterset.form if f.name != "q"],
            "table": table,
            "errors": state.errors,
            "notices": state.notices,
            "total": formats.number_format(total, force_grouping=True),
            "total_kind": total_kind,
            "total_count": total,
            "sort": "oldest" if request.GET.get("sort") == "oldest" else "newest",
            "sort_urls": {
                "newest": self.querystring(request, sort=None) or "?",
                "oldest": self.querystring(request, sort="oldest"),
            },
            "reset_url": self.browser_url(),
            "export_urls": self.export_urls(request),
            "action_form": (self.get_action_form(request, action_choices) if has_actions else None),
            "actions_on_top": True,
            "actions_on_bottom": False,
            "rows_on_page": len(table.page.object_list),
            "user_options_id": user_options_id,
            "integrity": self.get_integrity(request),
            "replica_notice": self.get_replica_notice(request),
            "media": self.media,
            "is_popup": False,
            "has_add_permission": False,
            **(extra_context or {}),
        }
        return TemplateResponse(
            request,
            self.change_list_template or self.get_template_names(request, "change_list.html"),
            context,
            status=state.status,
        )

    def offer_user_suggestions(self, request: HttpRequest, filterset: Any) -> str | None:
        """Point the user field at the suggestions endpoint (events.js fills a datalist)."""
        if not self.has_user_search_permission(request):
            return None
        options_id = "audit-user-options"
        filterset.form.fields["user"].widget.attrs.update(
            {
                "list": options_id,
                "autocomplete": "off",
                "data-suggest-url": reverse(f"{self.admin_site.name}:audit_app_auditevent_users"),
            }
        )
        return options_id

    def get_action_form(self, request: HttpRequest, choices: list) -> forms.Form:
        form = self.action_form(auto_id=None)
        form.fields["action"].choices = choices
        return form

    def estimate(self, queryset: Any, table: Any, page: int, per_page: int) -> tuple[int, str]:
        """(total, how): "exact" when this page shows the end or the events are few
        enough to count cheaply (``row_count()``), else the planner's estimate ("about"),
        or "at least" the rows seen so far when the planner guesses fewer.

        Never an unbounded COUNT(*): on millions of events it would cost more than the
        page itself.
        """
        rows = len(table.page.object_list)
        has_next = table.page.has_next()
        if page == 1 and not has_next:
            return rows, "exact"
        seen = (page - 1) * per_page + rows + (1 if has_next else 0)
        try:
            count = queryset.row_count()
        except EmptyResultSet:
            return seen, "at least"
        if count.exact:
            return count.value, "exact"
        return (count.value, "about") if count.value > seen else (seen, "at least")

    def export_urls(self, request: HttpRequest) -> dict[str, str]:
        if not self.has_export_permission(request):
            return {}
        query = self.querystring(request)
        return {
            fmt: reverse(f"{self.admin_site.name}:audit_app_auditevent_export", args=[fmt]) + query
            for fmt in self.get_export_formats(request)
        }

    # -- actions -----------------------------------------------------------------------------

    def selected_events(self, request: HttpRequest, keys: list[str]) -> Any:
        """The visible events among ``keys`` (``"shop.orderevent:12"``), in browser order.

        Each key names its event table, so the filter is per table and on its primary
        key; an id the viewer may not see is simply not found.
        """
        if len(keys) > MAX_SELECTED:
            raise BadRequest(f"Select at most {MAX_SELECTED} events at a time.")
        by_table: dict[str, set[int]] = {}
        for key in keys:
            try:
                label, event_id = parse_event_key(key)
                event_model = apps.get_model(label)
            except (Http404, LookupError) as exc:
                raise BadRequest(f"“{key[:60]}” is not an event; reload the page.") from exc
            if not hasattr(event_model, "audit_spec"):
                raise BadRequest(f"“{key[:60]}” is not an event; reload the page.")
            by_table.setdefault(event_model._meta.label, set()).add(event_id)
        condition = reduce(
            or_, (Q(event_model=label, event_id__in=sorted(ids)) for label, ids in by_table.items())
        )
        return (
            self.get_queryset(request)
            .filter(condition)
            .order_by(*self.get_browser_ordering(request))
        )

    def response_browser_action(self, request: HttpRequest) -> HttpResponse:
        """Run the chosen action on the selected rows (Django's flow, without a ChangeList)."""
        back = HttpResponseRedirect(request.get_full_path())
        name = request.POST.get("action", "")
        available = self.get_actions(request)
        if name not in available:
            self.message_user(request, "Choose an action first.", messages.WARNING)
            return back
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not selected:
            self.message_user(
                request,
                "Items must be selected in order to perform actions on them. "
                "No items have been changed.",
                messages.WARNING,
            )
            return back
        try:
            queryset = self.selected_events(request, selected)
        except BadRequest as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return back
        func = available[name][0]
        response = func(self, request, queryset)
        return response if isinstance(response, HttpResponseBase) else back

    # -- other views -------------------------------------------------------------------------

    def export_view(self, request: HttpRequest, fmt: str) -> HttpResponseBase:
        """Stream exactly the filtered events (GET: it writes only the export's log entry)."""
        if fmt not in self.get_export_formats(request):
            raise Http404(f"Unknown export format {fmt[:20]!r}.")
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET"])
        if not self.has_export_permission(request):
            raise PermissionDenied
        state = self.browse(request)
        if state.errors:
            return self.render_browser(request, state)
        return export_response(
            self,
            request,
            state.queryset,
            fmt,
            what=f"filtered events ({self.querystring(request)[1:] or 'no filter'})",
        )

    def user_search_view(self, request: HttpRequest) -> JsonResponse:
        """Usernames starting with ``term``, for the user filter's suggestions."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        term = request.GET.get("term", "")[:150]
        names: list[str] = []
        if term and "\x00" not in term and self.has_user_search_permission(request):
            user_model = get_user_model()
            field = user_model.USERNAME_FIELD
            # A prefix match on the username is served by its unique index.
            names = list(
                user_model._default_manager.filter(**{f"{field}__startswith": term})
                .order_by(field)
                .values_list(field, flat=True)[:20]
            )
        return JsonResponse({"results": [{"id": name, "text": name} for name in names]})

    def event_view(self, request: HttpRequest, event_key: str) -> HttpResponse:
        """One event: its version page on the object's history, else the nearest page."""
        try:
            label, event_id = parse_event_key(event_key)
            event_model = apps.get_model(label)
        except LookupError as exc:
            raise Http404("Unknown event.") from exc
        if not hasattr(event_model, "audit_spec"):
            raise Http404("Unknown event.")
        events = self.get_queryset(request).across(event_model).filter(event_id=event_id)
        event = events.without_diffs().first()
        primary = events.from_primary()
        if event is None and primary.db != events.db:
            # Not replayed on the replica yet, perhaps: the primary has every event.
            event = primary.without_diffs().first()
        if event is None:
            # The same answer for "missing" and "not yours": no probing for ids.
            raise Http404("Unknown event.")
        resolver = PageResolver(request, self.admin_site, self.browser_url())
        resolver.resolve([event])
        info = resolver.objects[event.id]
        model = apps.get_model(event.obj_model)
        fallback = f"{self.browser_url()}?" + urlencode(
            {"model": model._meta.label_lower, "object_id": event.obj_id}
        )
        return HttpResponseRedirect(info.version_url or info.change_url or fallback)

    def get_urls(self) -> list[Any]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.changelist_view), name=f"{info}_changelist"),
            path("export/<str:fmt>/", wrap(self.export_view), name=f"{info}_export"),
            path("users/", wrap(self.user_search_view), name=f"{info}_users"),
            path("<str:event_key>/", wrap(self.event_view), name=f"{info}_change"),
        ]
