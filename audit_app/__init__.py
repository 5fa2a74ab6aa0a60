"""django-audit-admin tracking core.

Names are loaded on first use so that ``@audit_app.track()`` works inside a project's
``models.py`` while the app registry is still loading; this module never imports
``audit_app.models`` itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AnyChange",
    "AuditError",
    "Condition",
    "ContextError",
    "DeleteEvent",
    "F",
    "InsertEvent",
    "ManualEvent",
    "Q",
    "RevertError",
    "Row",
    "Statement",
    "TrackingError",
    "UpdateEvent",
    "backfill",
    "context",
    "create_event",
    "current_context",
    "disable_tracking",
    "revert",
    "track",
    "update_context",
]

_LOCATIONS = {
    "AnyChange": "audit_app.trackers",
    "Condition": "audit_app.trackers",
    "DeleteEvent": "audit_app.trackers",
    "F": "audit_app.trackers",
    "InsertEvent": "audit_app.trackers",
    "ManualEvent": "audit_app.trackers",
    "Q": "audit_app.trackers",
    "Row": "audit_app.trackers",
    "Statement": "audit_app.trackers",
    "UpdateEvent": "audit_app.trackers",
    "AuditError": "audit_app.exceptions",
    "ContextError": "audit_app.exceptions",
    "TrackingError": "audit_app.exceptions",
    "RevertError": "audit_app.exceptions",
    "revert": "audit_app.cascade",
    "backfill": "audit_app.snapshots",
    "create_event": "audit_app.snapshots",
    "context": "audit_app.runtime",
    "current_context": "audit_app.runtime",
    "disable_tracking": "audit_app.runtime",
    "update_context": "audit_app.runtime",
    "track": "audit_app.tracking",
}


def __getattr__(name: str) -> Any:
    if name in _LOCATIONS:
        value = getattr(importlib.import_module(_LOCATIONS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'audit_app' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # pragma: no cover
    from audit_app.cascade import revert
    from audit_app.exceptions import AuditError, ContextError, RevertError, TrackingError
    from audit_app.runtime import context, current_context, disable_tracking, update_context
    from audit_app.snapshots import backfill, create_event
    from audit_app.trackers import (
        AnyChange,
        Condition,
        DeleteEvent,
        F,
        InsertEvent,
        ManualEvent,
        Q,
        Row,
        Statement,
        UpdateEvent,
    )
    from audit_app.tracking import track
