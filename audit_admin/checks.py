"""System checks of the admin integration; ids are stable and documented."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.core import checks

from audit_admin.mixins import AuditHistoryMixin

REQUIRED_APPS = {
    "audit_app": "audit_admin.E001",
    "django_filters": "audit_admin.E002",
    "django_tables2": "audit_admin.E003",
}


@checks.register(checks.Tags.compatibility)
def check_installed_apps(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"'{app}' must be in INSTALLED_APPS for audit_admin's pages.",
            hint=f"Add '{app}' to INSTALLED_APPS.",
            id=check_id,
        )
        for app, check_id in REQUIRED_APPS.items()
        if not apps.is_installed(app)
    ]


@checks.register(checks.Tags.admin)
def check_history_admins(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors = []
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, AuditHistoryMixin) and "audit_event_model" not in model.__dict__:
            errors.append(
                checks.Error(
                    f"{type(model_admin).__name__} uses AuditHistoryMixin, but "
                    f"{model._meta.label} is not tracked.",
                    hint=f"Decorate {model.__name__} with @audit_app.track(), or drop the mixin.",
                    obj=type(model_admin),
                    id="audit_admin.E004",
                )
            )
    return errors
