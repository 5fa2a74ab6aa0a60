"""``AuditActivityMixin``: an "Activity" button on a user's admin page.

The button opens the global event browser filtered to that user: everything they
changed, across every model the viewer may see.

    from django.contrib.auth.admin import UserAdmin

    admin.site.unregister(User)

    @admin.register(User)
    class ShopUserAdmin(AuditActivityMixin, UserAdmin):
        pass
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.loader import select_template

from audit_admin import themes
from audit_admin.links import event_browser_url


class AuditActivityMixin:
    """Add an "Activity" object-tools button to the change form of a user ModelAdmin."""

    #: The change form template this admin would use without the mixin (None: the
    #: admin's usual per-model lookup). Our template extends it.
    audit_base_change_form_template: str | None = None
    change_form_template = "audit_admin/events/activity_change_form.html"

    def get_audit_activity_url(self, request: HttpRequest, obj: Any) -> str | None:
        """The event browser filtered to ``obj``, when the viewer may open the browser."""
        # By username: readable in the filter box, and resolved to the user's id there,
        # so renamed users keep their whole history.
        return event_browser_url(request, self.admin_site, user=obj.get_username())

    def get_audit_base_change_form_template(self, request: HttpRequest) -> Any:
        opts = self.opts
        return self.audit_base_change_form_template or select_template(
            [
                f"admin/{opts.app_label}/{opts.model_name}/change_form.html",
                f"admin/{opts.app_label}/change_form.html",
                "admin/change_form.html",
            ]
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        context = {
            **context,
            "audit_base_change_form_template": self.get_audit_base_change_form_template(request),
            "audit_activity_url": (
                self.get_audit_activity_url(request, obj) if obj is not None and not add else None
            ),
        }
        response = super().render_change_form(request, context, add, change, form_url, obj)
        return themes.use_theme(
            response, AuditActivityMixin.change_form_template, "events/activity_change_form.html"
        )
