"""What every page of ours passes to the admin's templates."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def admin_context(model_admin: Any, request: HttpRequest, title: str) -> dict[str, Any]:
    """The admin site's context plus the names its base templates expect of a model page."""
    request.current_app = model_admin.admin_site.name
    opts = model_admin.opts
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "module_name": str(opts.verbose_name_plural).capitalize(),
    }
