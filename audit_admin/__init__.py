"""django-audit-admin: history, diff, revert and export in the Django admin.

Names are loaded on first use; this module imports no models. These are the classes
the documentation tells projects to use, subclass or register.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AuditActivityMixin",
    "AuditEventAdmin",
    "AuditHistoryMixin",
    "AuditModelAdmin",
    "AuditTable",
    "DeletedTable",
    "EventFilterSet",
    "EventTable",
    "HistoryFilterSet",
    "HistoryTable",
]

_LOCATIONS = {
    "AuditActivityMixin": "audit_admin.activity",
    "AuditEventAdmin": "audit_admin.browser",
    "AuditHistoryMixin": "audit_admin.mixins",
    "AuditModelAdmin": "audit_admin.mixins",
    "AuditTable": "audit_admin.table_base",
    "DeletedTable": "audit_admin.history_tables",
    "EventFilterSet": "audit_admin.browser_filters",
    "EventTable": "audit_admin.browser_tables",
    "HistoryFilterSet": "audit_admin.history_filters",
    "HistoryTable": "audit_admin.history_tables",
}


def __getattr__(name: str) -> Any:
    if name in _LOCATIONS:
        value = getattr(importlib.import_module(_LOCATIONS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'audit_admin' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # pragma: no cover
    from audit_admin.activity import AuditActivityMixin
    from audit_admin.browser import AuditEventAdmin
    from audit_admin.browser_filters import EventFilterSet
    from audit_admin.browser_tables import EventTable
    from audit_admin.history_filters import HistoryFilterSet
    from audit_admin.history_tables import DeletedTable, HistoryTable
    from audit_admin.mixins import AuditHistoryMixin, AuditModelAdmin
    from audit_admin.table_base import AuditTable
