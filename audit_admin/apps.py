from pathlib import Path

from django.apps import AppConfig


class AuditAdminConfig(AppConfig):
    name = "audit_admin"
    label = "audit_admin"
    verbose_name = "Audit admin"

    def __init__(self, app_name, app_module):
        super().__init__(app_name, app_module)
        # In a wheel, templates/ and static/ sit inside this package. In a source
        # checkout they sit at the repository root (the design card's layout), and
        # Django's app-directory loaders look in <app path>/templates and /static.
        package = Path(__file__).resolve().parent
        if not (package / "templates").is_dir() and (package.parent / "templates").is_dir():
            self.path = str(package.parent)

    def ready(self) -> None:
        # Imported once the app registry is ready: the checks import the admin mixins,
        # which import audit_app's models. Importing registers the system checks.
        from audit_admin import checks  # noqa: F401
