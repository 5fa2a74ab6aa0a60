"""django-audit-admin: history, diff, revert and export in the Django admin.

Names are loaded on first use; this module imports no models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["AuditHistoryMixin", "AuditModelAdmin"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("audit_admin.mixins"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'audit_admin' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from audit_admin.mixins import AuditHistoryMixin, AuditModelAdmin
