"""Admin URLs of objects and pages, and links only where the viewer may follow them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.admin import AdminSite
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.db import models
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from audit_app.diff import Related
from audit_app.models import AuditEvent


def admin_url(
    admin_site: AdminSite, model: type[models.Model], view: str, *args: Any
) -> str | None:
    """The URL of ``model``'s admin view ``view`` ("change", "history"...) on ``admin_site``,
    or None when the site has no such view. Object keys are quoted as the admin quotes
    them."""
    opts = model._meta
    try:
        return reverse(f"{admin_site.name}:{opts.app_label}_{opts.model_name}_{view}", args=args)
    except NoReverseMatch:
        return None


def model_admin_for(admin_site: AdminSite, model: type[models.Model]) -> Any:
    """The ModelAdmin of ``model``, else of its concrete model (a tracked proxy is usually
    administered as its table's concrete model: the row is the same)."""
    registry = admin_site._registry
    return registry.get(model) or registry.get(model._meta.concrete_model)


def event_browser_url(request: HttpRequest, admin_site: AdminSite, **params: str) -> str | None:
    """The global event browser filtered by ``params``, when the viewer may open it."""
    events_admin = admin_site._registry.get(AuditEvent)
    if events_admin is None or not events_admin.has_view_permission(request):
        return None
    url = admin_url(admin_site, AuditEvent, "changelist")
    if url is None:
        return None
    return f"{url}?{urlencode(params)}" if params else url


class AdminLinks:
    """Change-page URLs the viewer may open: one permission check per model (not per
    value), one URL per object."""

    def __init__(self, request: HttpRequest, admin_site: AdminSite) -> None:
        self.request = request
        self.admin_site = admin_site
        self._allowed: dict[type, bool] = {}
        self._urls: dict[tuple[type, Any], str | None] = {}

    def may_open(self, model: type[models.Model]) -> bool:
        """Whether the viewer may open ``model``'s change pages on this site."""
        if model not in self._allowed:
            model_admin = model_admin_for(self.admin_site, model)
            self._allowed[model] = model_admin is not None and (
                model_admin.has_view_or_change_permission(self.request)
            )
        return self._allowed[model]

    def change_url(self, model: type[models.Model], pk: Any) -> str | None:
        """The change page of ``model`` ``pk``, if the viewer may open it."""
        if pk is None or not self.may_open(model):
            return None
        key = (model, str(pk))
        if key not in self._urls:
            model_admin = model_admin_for(self.admin_site, model)
            self._urls[key] = admin_url(self.admin_site, model_admin.model, "change", quote(pk))
        return self._urls[key]

    def related_url(self, ref: Related | None) -> str | None:
        """The change page of a related object, if it exists and the viewer may see it."""
        if ref is None or not ref.exists:
            return None
        return self.change_url(ref.model, ref.pk)

    def user_url(self, user_pk: Any) -> str | None:
        """The admin page of the user ``user_pk``, if the viewer may open it."""
        return self.change_url(get_user_model(), user_pk)
