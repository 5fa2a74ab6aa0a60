"""What a revert or restore POST carries, read the same way by every view that applies one.

The per-object revert and restore pages and the event browser's bulk revert all take a
reason and the version the viewer saw last (to refuse a revert of an object that changed
since), and answer a failed revert with the same status codes.
"""

from __future__ import annotations

from django.http import HttpRequest

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
