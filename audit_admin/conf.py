"""Settings of the admin, each read at call time so ``override_settings`` works.

Every setting is named ``AUDIT_ADMIN_<NAME>`` and documented in ``docs/settings.md``.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_CONTEXT_KEYS = ("request_id", "url", "ip", "method", "reason", "command")
# Context keys become JSON paths in SQL: only plain names, never lookups ("a__b").
_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


def _get(name: str, default: Any) -> Any:
    return getattr(settings, f"AUDIT_ADMIN_{name}", default)


def context_keys() -> tuple[str, ...]:
    """Context metadata keys the event browser filters by (``AUDIT_ADMIN_CONTEXT_KEYS``)."""
    keys = tuple(_get("CONTEXT_KEYS", DEFAULT_CONTEXT_KEYS))
    for key in keys:
        if not isinstance(key, str) or not _KEY_RE.match(key) or "__" in key:
            raise ImproperlyConfigured(
                f"AUDIT_ADMIN_CONTEXT_KEYS contains {key!r}; use plain metadata key names "
                "(letters, digits and single underscores, starting with a letter)."
            )
    return keys


def max_page() -> int:
    """The deepest page the event browser serves (``AUDIT_ADMIN_MAX_PAGE``).

    Pages are fetched with OFFSET, whose cost grows with the page number; older events
    stay reachable through the date filter or the "oldest first" order.
    """
    return int(_get("MAX_PAGE", 200))


def bulk_revert_limit() -> int:
    """How many events one bulk revert may apply (``AUDIT_ADMIN_BULK_REVERT_LIMIT``)."""
    return int(_get("BULK_REVERT_LIMIT", 100))


def theme() -> str | None:
    """The admin skin our pages are styled for (``AUDIT_ADMIN_THEME``).

    None (the default) for Django's own admin; a name such as ``"unfold"`` makes every
    page look up ``audit_admin/themes/<name>/`` templates before the stock ones.
    """
    return _get("THEME", None) or None
