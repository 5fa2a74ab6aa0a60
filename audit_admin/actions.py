"""Admin actions of the event browser: export the selected events, revert them in bulk.

Bulk revert follows Django's two-step pattern: the action's POST shows one confirmation
page with every object's change (current -> the selected version) and its conflicts; a
second POST with ``confirm=yes`` applies all reverts in one transaction (all or nothing),
then ``message_user`` and a redirect. When a revert fails, nothing is written and the
confirmation page says which object and why.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.db import models, router, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from audit_admin import conf, rendering
from audit_admin.export import export_response
from audit_admin.links import admin_url
from audit_admin.pages import admin_context
from audit_admin.permissions import may_change_model
from audit_admin.revert_requests import (
    REASON_MAX,
    error_status,
    posted_event_id,
    posted_reason,
    record_in_admin_log,
)
from audit_app.exceptions import RevertError
from audit_app.models import AuditEvent
from audit_app.replicas import primary_reads
from audit_app.reverting import RevertPlan, latest_event_id, preview, revert

# -- export ---------------------------------------------------------------------------------


@admin.action(permissions=["export"], description=gettext_lazy("Export the selected events as CSV"))
def export_selected_csv(model_admin: Any, request: HttpRequest, queryset: Any) -> HttpResponse:
    return export_response(model_admin, request, queryset, "csv", what=_selection(queryset))


@admin.action(
    permissions=["export"], description=gettext_lazy("Export the selected events as JSON Lines")
)
def export_selected_jsonl(model_admin: Any, request: HttpRequest, queryset: Any) -> HttpResponse:
    return export_response(model_admin, request, queryset, "jsonl", what=_selection(queryset))


def _selection(queryset: Any) -> str:
    """The exported events' keys, for the log (a selection is one page at most)."""
    keys = list(queryset.without_diffs().values_list("id", flat=True)[:200])
    return f"selected events {', '.join(keys)}"


# -- bulk revert ----------------------------------------------------------------------------


@dataclass
class RevertItem:
    """One selected event on the confirmation page: its object, change and problems."""

    event: AuditEvent
    model: type[models.Model]
    label: str
    plan: RevertPlan | None = None
    changes: list[rendering.ShownChange] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    expected_event_id: int | None = None
    change_url: str | None = None

    @property
    def key(self) -> str:
        return self.event.id

    @property
    def model_name(self) -> str:
        return str(self.model._meta.verbose_name)

    @property
    def time(self) -> SafeString:
        return rendering.time_html(self.event.created_at)

    @property
    def is_restore(self) -> bool:
        return self.plan is not None and self.plan.is_restore

    @property
    def diff(self) -> str:
        return rendering.render_changes(
            self.changes,
            before="Current" if not self.is_restore else "Now",
            after="After the revert" if not self.is_restore else "Restored",
        )


def _may_revert(model_admin: Any, request: HttpRequest, item: RevertItem) -> bool:
    """The permission the object's own admin asks for (its hooks), else the model perms."""
    registry = model_admin.admin_site._registry
    target_admin = registry.get(item.model)
    if item.is_restore:
        hook = getattr(target_admin, "has_restore_permission", None)
        if hook is not None:
            return hook(request)
        allowed = may_change_model(request.user, item.model, "add")
    else:
        hook = getattr(target_admin, "has_revert_permission", None)
        if hook is not None:
            return hook(request, item.plan.obj if item.plan else None)
        allowed = may_change_model(request.user, item.model)
    return allowed and request.user.has_perm("audit_app.revert_auditevent")


def _change_url(model_admin: Any, model: type[models.Model], pk: Any) -> str | None:
    # The page itself checks permissions; the item already says when the viewer lacks them.
    if model not in model_admin.admin_site._registry:
        return None
    return admin_url(model_admin.admin_site, model, "change", quote(pk))


def _plan_item(model_admin: Any, request: HttpRequest, event: AuditEvent) -> RevertItem:
    model = apps.get_model(event.obj_model)
    item = RevertItem(event, model, rendering.deleted_label(model, event))
    try:
        item.plan = preview(event)
    except RevertError as exc:
        item.problems.append(str(exc))
        return item
    plan = item.plan
    if plan.obj is not None:
        item.label = str(plan.obj)
        item.change_url = _change_url(model_admin, model, plan.obj.pk)
        item.expected_event_id = latest_event_id(plan.version.event_model, plan.version.pk)
    item.changes = rendering.prepare(plan.changes, request, model_admin.admin_site)
    item.problems.extend(str(problem) for problem in plan.problems)
    if not _may_revert(model_admin, request, item):
        if item.is_restore:
            refusal = _("You may not restore %(objects)s; deselect this event.")
        else:
            refusal = _("You may not change %(objects)s; deselect this event.")
        item.problems.insert(0, refusal % {"objects": model._meta.verbose_name_plural})
    return item


def plan_items(
    model_admin: Any, request: HttpRequest, events: list[AuditEvent]
) -> list[RevertItem]:
    """One item per selected event; a second version of the same object is a problem."""
    items, seen = [], set()
    for event in events:
        item = _plan_item(model_admin, request, event)
        target = (event.event_model, event.obj_id)
        if target in seen:
            item.problems.insert(
                0, _("Another selected event is a version of the same object; select only one.")
            )
        seen.add(target)
        items.append(item)
    return items


@admin.action(
    permissions=["revert"],
    description=gettext_lazy("Revert the selected objects to these versions"),
)
@primary_reads()
def revert_selected(model_admin: Any, request: HttpRequest, queryset: Any) -> HttpResponse | None:
    # The browser may read a replica; what a revert checks and applies, never.
    limit = conf.bulk_revert_limit()
    events = list(queryset.from_primary().without_diffs()[: limit + 1])
    if len(events) > limit:
        model_admin.message_user(
            request,
            ngettext(
                "Revert at most %(count)d event at a time.",
                "Revert at most %(count)d events at a time.",
                limit,
            )
            % {"count": limit},
            messages.ERROR,
        )
        return None
    if not events:
        model_admin.message_user(request, _("None of the selected events exist."), messages.WARNING)
        return None
    items = plan_items(model_admin, request, events)
    if request.POST.get("confirm") == "yes":
        return _apply(model_admin, request, items)
    return _confirmation(model_admin, request, items)


class _ItemFailed(Exception):
    def __init__(self, item: RevertItem, error: RevertError) -> None:
        super().__init__(str(error))
        self.item, self.error = item, error


def _apply(model_admin: Any, request: HttpRequest, items: list[RevertItem]) -> HttpResponse:
    if any(item.problems for item in items):
        # The page offered no confirm button; a forged or stale POST gets the page again.
        return _confirmation(model_admin, request, items, status=400)
    reason = posted_reason(request)
    databases = {router.db_for_write(item.model) for item in items}
    try:
        with ExitStack() as stack:
            # One transaction per database involved, all rolled back by any failure.
            for alias in sorted(databases):
                stack.enter_context(transaction.atomic(using=alias))
            for item in items:
                try:
                    saved = revert(
                        item.event,
                        user=request.user,
                        reason=reason,
                        expected_event_id=posted_event_id(request, f"expected_{item.key}"),
                    )
                except RevertError as exc:
                    raise _ItemFailed(item, exc) from exc
                target_admin = model_admin.admin_site._registry.get(item.model)
                record_in_admin_log(
                    target_admin, request, saved, item.event, restored=item.is_restore
                )
    except _ItemFailed as failure:
        return _confirmation(
            model_admin,
            request,
            items,
            error=_("%(object)s: %(error)s Nothing was reverted.")
            % {"object": failure.item.label, "error": failure.error},
            status=error_status(failure.error),
        )
    labels = [item.label for item in items]
    shown = ", ".join(f"“{label}”" for label in labels[:10])
    if len(labels) > 10:
        more = len(labels) - 10
        shown = ngettext("%(names)s and %(count)d more", "%(names)s and %(count)d more", more) % {
            "names": shown,
            "count": more,
        }
    message = ngettext(
        "Reverted %(count)d object to the selected version: %(names)s.",
        "Reverted %(count)d objects to the selected versions: %(names)s.",
        len(items),
    ) % {"count": len(items), "names": shown}
    model_admin.message_user(request, message, messages.SUCCESS)
    return HttpResponseRedirect(request.get_full_path())


def _confirmation(
    model_admin: Any,
    request: HttpRequest,
    items: list[RevertItem],
    *,
    error: str | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        **admin_context(model_admin, request, "Revert the selected objects"),
        "items": items,
        "blocked": any(item.problems for item in items),
        "error": error,
        "action_url": request.get_full_path(),
        "action_name": "revert_selected",
        "checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "browser_url": request.get_full_path(),
        "reason": posted_reason(request),
        "reason_max": REASON_MAX,
        "media": model_admin.media,
    }
    return TemplateResponse(
        request,
        model_admin.get_template_names(request, "revert_confirmation.html"),
        context,
        status=status,
    )
