"""Admin themes: the templates a page looks up when ``AUDIT_ADMIN_THEME`` is set.

A theme is a folder of templates, ``audit_admin/themes/<name>/``, laid out like
``audit_admin/`` itself. A page looks up the project's per-model and per-app
templates first, then the theme's version of the page, then ours
(``docs/admin.md#themes``). A page the theme does not provide falls back to ours.
"""

from __future__ import annotations

import re
from typing import Any

from django.template import TemplateDoesNotExist
from django.template.loader import select_template

from audit_admin import conf

#: The themes shipped with django-audit-admin, and the app each one styles.
BUILTIN_THEMES = {"unfold": "unfold"}
#: Every page template a theme may provide.
PAGE_TEMPLATES = (
    "object_history.html",
    "object_version.html",
    "object_compare.html",
    "revert_confirmation.html",
    "deleted_list.html",
    "change_list.html",
    "events/change_list.html",
    "events/revert_confirmation.html",
    "events/activity_change_form.html",
)
# A theme name becomes part of a template path: a plain name only.
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def template_names(name: str) -> list[str]:
    """The active theme's version of ``name`` (when a theme is set), then ours."""
    theme = conf.theme()
    ours = f"audit_admin/{name}"
    return [f"audit_admin/themes/{theme}/{name}", ours] if theme else [ours]


def use_theme(response: Any, default: str, name: str) -> Any:
    """Let a response rendered with our ``default`` template use the theme's ``name``.

    For the pages Django's ModelAdmin renders (changelist, change form), whose
    template is a ModelAdmin attribute: a project's own template is left alone.
    """
    if getattr(response, "template_name", None) == default:
        response.template_name = template_names(name)
    return response


def is_known(theme: str) -> bool:
    """Whether ``theme`` is a built-in theme, or a plain name some template folder provides."""
    if not isinstance(theme, str) or not _NAME_RE.match(theme):
        return False
    if theme in BUILTIN_THEMES:
        return True
    try:
        select_template([f"audit_admin/themes/{theme}/{page}" for page in PAGE_TEMPLATES])
    except TemplateDoesNotExist:
        return False
    return True
