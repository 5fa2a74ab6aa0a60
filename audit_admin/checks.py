"""System checks of the admin integration; ids are stable and documented."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.core import checks

from audit_admin import conf, themes
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


@checks.register(checks.Tags.templates)
def check_theme(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    theme = conf.theme()
    messages: list[checks.CheckMessage] = []
    if apps.is_installed("unfold") and theme != "unfold":
        messages.append(
            checks.Warning(
                "django-unfold is installed, but AUDIT_ADMIN_THEME is not 'unfold': the "
                "history pages and the event browser use templates made for Django's own "
                "admin, and look unstyled under unfold.",
                hint="Set AUDIT_ADMIN_THEME = 'unfold' (see the Themes section of docs/admin.md).",
                id="audit_admin.W001",
            )
        )
    if theme is None:
        return messages
    if not themes.is_known(theme):
        messages.append(
            checks.Error(
                f"AUDIT_ADMIN_THEME is {theme!r}: no such theme (built in: "
                f"{', '.join(repr(t) for t in themes.BUILTIN_THEMES)}), and no template "
                f"of it is found under audit_admin/themes/.",
                hint="Fix the name, set AUDIT_ADMIN_THEME = None for Django's own admin, or "
                "add the theme's templates under templates/audit_admin/themes/<name>/.",
                id="audit_admin.E005",
            )
        )
    elif theme in themes.BUILTIN_THEMES and not apps.is_installed(themes.BUILTIN_THEMES[theme]):
        app = themes.BUILTIN_THEMES[theme]
        messages.append(
            checks.Error(
                f"AUDIT_ADMIN_THEME is {theme!r}, but '{app}' is not in INSTALLED_APPS: the "
                "theme's templates extend that app's own.",
                hint=f"Install the theme's app (pip install 'django-audit-admin[{theme}]') and "
                f"add '{app}' to INSTALLED_APPS, or set AUDIT_ADMIN_THEME = None.",
                id="audit_admin.E006",
            )
        )
    return messages
