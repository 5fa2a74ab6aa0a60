"""Turn the diff engine's structured changes into HTML for admin pages.

Values are never marked safe here: templates escape every one of them. This module
only decides what to show (labels, links the viewer may follow) and which template
renders each kind of field, so a project can restyle one kind by overriding one
template.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString

from audit_app.diff import FieldChange, Related, resolve_related

# Values longer than this are collapsed behind an accessible <details> control.
COLLAPSE_AFTER = 160


@dataclass
class Shown:
    """A FieldChange plus what the viewer may see of it."""

    change: FieldChange
    old_url: str | None = None
    new_url: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.change, name)


def admin_url(ref: Related | None, request: HttpRequest, admin_site: AdminSite) -> str | None:
    """The change page of a related object, if it exists and the viewer may see it."""
    if ref is None or not ref.exists:
        return None
    model_admin = admin_site._registry.get(ref.model)
    if model_admin is None or not model_admin.has_view_or_change_permission(request):
        return None
    opts = ref.model._meta
    try:
        return reverse(
            f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[ref.pk]
        )
    except NoReverseMatch:
        return None


def prepare(
    changes: Iterable[FieldChange], request: HttpRequest, admin_site: AdminSite
) -> list[Shown]:
    """Resolve FK labels (one query per related model) and the links the viewer may use."""
    changes = list(changes)
    resolve_related(changes)
    return [
        Shown(
            c,
            admin_url(c.related_old, request, admin_site),
            admin_url(c.related_new, request, admin_site),
        )
        for c in changes
    ]


def render_changes(
    changes: Iterable[Shown], *, compact: bool = False, before: str = "Before", after: str = "After"
) -> SafeString:
    """The field table of a diff (``compact``: the timeline's short form)."""
    return render_to_string(
        "audit_admin/includes/diff_table.html",
        {
            "changes": list(changes),
            "compact": compact,
            "before_label": before,
            "after_label": after,
            "collapse_after": COLLAPSE_AFTER,
        },
    )
