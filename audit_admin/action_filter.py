"""Filtering events by what happened (``AuditEvent.action``), for every filter set.

``audit_app.diff.action_of`` tells an event's action in Python; ``action_q`` is the
same rule as a database filter.
"""

from __future__ import annotations

from django.db.models import Q

ACTION_CHOICES = (
    ("created", "Created"),
    ("changed", "Changed"),
    ("deleted", "Deleted"),
    ("reverted", "Reverted"),
    ("restored", "Restored"),
    ("snapshot", "Snapshot"),
)
_SPECIAL = ("reverted", "restored")


def action_q(action: str) -> Q:
    """The filter matching ``AuditEvent.action == action``."""
    if action in _SPECIAL:
        return Q(label__in=("insert", "update"), context__metadata__audit_action=action)
    label = {"created": "insert", "changed": "update", "deleted": "delete"}.get(action, action)
    if label in ("insert", "update"):
        # Written outside any context, or in one that is not a revert or restore.
        # (Spelled out: a negated JSON lookup is NULL, not true, for a missing key.)
        return Q(label=label) & (
            Q(context__isnull=True) | ~Q(context__metadata__has_key="audit_action")
        )
    return Q(label=label)
