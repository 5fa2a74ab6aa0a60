"""Revert and restore in the admin: a POST shows the confirmation, a second POST applies it."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from audit_admin import changeset_reverts, rendering
from audit_admin.history import HistoryPage, object_or_404, parse_event_key
from audit_admin.history_tables import DeletedTable
from audit_admin.pagination import paginate_lazily
from audit_admin.restore_cascade import cascade_context, follows, permission_problems
from audit_admin.revert_requests import (
    REASON_MAX,
    error_status,
    posted_event_id,
    posted_reason,
    record_in_admin_log,
    version_phrase,
)
from audit_app.cascade import plan_restore, revert
from audit_app.changeset_revert import plan_changeset_revert, revert_changeset
from audit_app.exceptions import NothingToRevert, RevertError
from audit_app.models import AuditEvent
from audit_app.reverting import latest_event_id, preview


def _title(history: HistoryPage, event: AuditEvent, *, restore: bool) -> str:
    if restore:
        label = rendering.deleted_label(history.model_admin.model, event)
        return _("Restore “%(object)s”") % {"object": label}
    return _("Revert “%(object)s”") % {"object": history.obj}


def _changeset_confirmation(
    request: HttpRequest,
    history: HistoryPage,
    event: AuditEvent,
    *,
    error: RevertError | None,
    action_url: str,
) -> HttpResponse:
    """The confirmation of a revert to a change set: the object's fields and every
    followed row it touches, with every problem."""
    try:
        found = changeset_reverts.revert_context(request, event, history.obj)
    except RevertError as exc:
        found, error = {"plan": None, "changes": [], "problems": []}, error or exc
    problems = [p for p in found["problems"] if str(p) != str(error)]
    context = {
        **history.base_context(_title(history, event, restore=False)),
        **found,
        "event": event,
        "event_time": rendering.time_html(event.created_at),
        "changes": rendering.prepare(found["changes"], request, history.admin_site),
        "problems": problems,
        "nothing_to_do": any(isinstance(p, NothingToRevert) for p in problems),
        "error": error,
        # The object's newest own event as shown: a revert after it changed is refused.
        "expected_event_id": (
            latest_event_id(event.source_event_model, history.obj.pk)
            if history.is_own(event)
            else None
        ),
        "action_url": action_url,
        "reason_max": REASON_MAX,
        "reason": posted_reason(request),
    }
    return TemplateResponse(
        request,
        history.template("revert_confirmation.html"),
        context,
        status=error_status(error),
    )


def _confirmation(
    model_admin: Any,
    request: HttpRequest,
    history: HistoryPage,
    event: AuditEvent,
    *,
    error: RevertError | None = None,
    action_url: str,
) -> HttpResponse:
    if history.obj is not None and changeset_reverts.follows(model_admin.model):
        return _changeset_confirmation(request, history, event, error=error, action_url=action_url)
    try:
        plan = preview(event)
    except RevertError as exc:
        plan, error = None, error or exc
    problems = plan.problems if plan else []
    if error is not None:
        # The error that stopped the revert is shown once, at the top.
        problems = [p for p in problems if str(p) != str(error)]
    expected = (
        latest_event_id(plan.version.event_model, plan.version.pk)
        if plan and not plan.is_restore
        else None
    )
    context = {
        **history.base_context(_title(history, event, restore=bool(plan and plan.is_restore))),
        "event": event,
        "event_time": rendering.time_html(event.created_at),
        "plan": plan,
        "changes": rendering.prepare(plan.changes, request, history.admin_site) if plan else [],
        "problems": problems,
        # The object already is this version: say so, and offer nothing to confirm.
        "nothing_to_do": any(isinstance(p, NothingToRevert) for p in problems),
        "error": error,
        "expected_event_id": expected,
        "action_url": action_url,
        "reason_max": REASON_MAX,
        "reason": posted_reason(request),
    }
    if plan and plan.is_restore and follows(event):
        # The rows the deletion removed come back too: list them, with every problem.
        context.update(cascade_context(request, event))
        context["problems"] = [p for p in context["cascade_problems"] if p != str(error)]
    return TemplateResponse(
        request,
        history.template("revert_confirmation.html"),
        context,
        status=error_status(error),
    )


def _apply(
    model_admin: Any,
    request: HttpRequest,
    history: HistoryPage,
    event: AuditEvent,
    action_url: str,
) -> HttpResponse:
    fields = request.POST.getlist("fields") or None
    try:
        if history.obj is not None and changeset_reverts.follows(model_admin.model):
            saved = revert_changeset(
                event,
                root=history.obj,
                fields=fields,
                user=request.user,
                reason=posted_reason(request),
                expected=request.POST.get("expected_changeset", "")[:200] or None,
                expected_event_id=posted_event_id(request, "expected_event_id"),
            )
        else:
            saved = revert(
                event,
                fields=fields,
                user=request.user,
                reason=posted_reason(request),
                expected_event_id=posted_event_id(request, "expected_event_id"),
            )
    except NothingToRevert as exc:
        # Not an error: the object is already as asked (say, a second press of the button).
        model_admin.message_user(request, str(exc), messages.INFO)
        return HttpResponseRedirect(history.url("history", quote(history.obj.pk)))
    except RevertError as exc:
        return _confirmation(model_admin, request, history, event, error=exc, action_url=action_url)
    restored = history.obj is None
    record_in_admin_log(model_admin, request, saved, event, restored=restored)
    if restored:
        message = _("%(model)s “%(object)s” was restored %(phrase)s.")
    else:
        message = _("%(model)s “%(object)s” was reverted %(phrase)s.")
    values = {
        "model": capfirst(model_admin.opts.verbose_name),
        "object": saved,
        "phrase": version_phrase(event, restored=restored),
    }
    model_admin.message_user(request, message % values, messages.SUCCESS)
    return HttpResponseRedirect(history.url("change", quote(saved.pk)))


def revert_view(
    model_admin: Any, request: HttpRequest, object_id: str, event_key: str
) -> HttpResponse:
    if request.method != "POST":
        # Nothing here ever changes on GET: the timeline's buttons are POST forms.
        return HttpResponseNotAllowed(["POST"])
    obj = object_or_404(model_admin, request, object_id)
    if not model_admin.has_revert_permission(request, obj):
        raise PermissionDenied
    history = HistoryPage(model_admin, request, obj)
    # An event of a followed row names its change set, for a model that follows rows.
    event = history.event(event_key, followed=changeset_reverts.follows(model_admin.model))
    action_url = history.url("audit_revert", quote(obj.pk), event.id)
    if request.POST.get("confirm") == "yes":
        if changeset_reverts.follows(model_admin.model) and changeset_reverts.permission_problems(
            request, plan_changeset_revert(event, root=obj)
        ):
            raise PermissionDenied
        return _apply(model_admin, request, history, event, action_url)
    return _confirmation(model_admin, request, history, event, action_url=action_url)


def deleted_event(model_admin: Any, event_key: str) -> AuditEvent:
    label, event_id = parse_event_key(event_key)
    own = model_admin.model.audit_event_model._meta.label_lower
    if label != own:
        raise Http404("Unknown version.")
    deleted = AuditEvent.objects.from_primary().across(label).deleted()
    event = deleted.filter(event_id=event_id).first()
    if event is None:
        raise Http404("That object is not deleted, or the version is unknown.")
    return event


def restore_view(model_admin: Any, request: HttpRequest, event_key: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_restore_permission(request):
        raise PermissionDenied
    event = deleted_event(model_admin, event_key)
    history = HistoryPage(model_admin, request, None)
    action_url = history.url("audit_restore", event.id)
    if request.POST.get("confirm") == "yes":
        if follows(event) and permission_problems(request, plan_restore(event)):
            raise PermissionDenied
        return _apply(model_admin, request, history, event, action_url)
    return _confirmation(model_admin, request, history, event, action_url=action_url)


def deleted_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    history = HistoryPage(model_admin, request, None)
    events = (
        # The restore workflow starts here: the primary, so a deletion just made is listed.
        AuditEvent.objects.from_primary().across(model_admin.model).deleted().without_diffs()
    ).select_related("context")
    search = request.GET.get("q", "")[:200]
    if "\x00" in search:
        # No stored text holds NUL (PostgreSQL refuses it), so nothing matches.
        events = events.none()
    elif search:
        events = events.filter(data__icontains=search)
    table = DeletedTable(
        events,
        model=model_admin.model,
        restore=model_admin.has_restore_permission(request),
        history=history,
    )
    paginate_lazily(table, request, 50)
    context = {
        **history.base_context(
            _("Deleted %(objects)s") % {"objects": model_admin.opts.verbose_name_plural}
        ),
        "table": table,
        "search": search,
        "changelist_url": history.url("changelist"),
    }
    return TemplateResponse(request, history.template("deleted_list.html"), context)
