"""What a revert or restore POST carries, and how an applied one is recorded: the same
for every view that applies one.

The per-object revert and restore pages and the event browser's bulk revert all take a
reason and the version the viewer saw last (to refuse a revert of an object that changed
since), answer a failed revert with the same status codes, and leave the same entry in
the admin log.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.http import HttpRequest
from django.utils.translation import gettext as _

from audit_admin import rendering
from audit_app.exceptions import RevertConflict, RevertError

#: The longest reason kept; longer input is cut, not refused.
REASON_MAX = 500
# Event ids are bigints: more digits than this cannot be one.
_ID_DIGITS = 18


def posted_reason(request: HttpRequest) -> str:
    """The reason typed on the confirmation page (cut to ``REASON_MAX``)."""
    return request.POST.get("reason", "")[:REASON_MAX]


def posted_event_id(request: HttpRequest, name: str) -> int | None:
    """The event id of the hidden field ``name`` (None when absent); RevertError when it
    cannot be an event id, which only a tampered form sends."""
    raw = request.POST.get(name, "")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > _ID_DIGITS:
        raise RevertError("The form was tampered with (expected version); reload the page.")
    return int(raw)


def error_status(error: RevertError | None) -> int:
    """The status of a page that shows ``error``: 409 for a conflict, else 400 (200: none)."""
    if error is None:
        return 200
    return 409 if isinstance(error, RevertConflict) else 400


def version_phrase(event: Any, *, restored: bool) -> str:
    """The version a revert or restore went back to, in words (time and author)."""
    when = rendering.when(event.created_at)
    if restored:
        phrase = _("as it was when deleted on %(time)s") % {"time": when}
    else:
        phrase = _("to the version of %(time)s") % {"time": when}
    if event.username:
        phrase = _("%(phrase)s by %(user)s") % {"phrase": phrase, "user": event.username}
    return phrase


def record_in_admin_log(
    model_admin: Any, request: HttpRequest, obj: Any, event: Any, *, restored: bool
) -> None:
    """Write the admin log entry of an applied revert or restore, so that it shows in
    Recent actions like any other change made in the admin ("Reverted to the version
    of ..."). The object's own ModelAdmin writes it when it has one (its ``log_*``
    hooks), else the entry is written directly."""
    if restored:
        message = _("Restored %(phrase)s.") % {"phrase": version_phrase(event, restored=True)}
    else:
        message = _("Reverted %(phrase)s.") % {"phrase": version_phrase(event, restored=False)}
    if model_admin is not None:
        log = model_admin.log_addition if restored else model_admin.log_change
        log(request, obj, message)
        return
    LogEntry.objects.log_actions(
        user_id=request.user.pk,
        queryset=[obj],
        action_flag=ADDITION if restored else CHANGE,
        change_message=message,
        single_object=True,
    )
