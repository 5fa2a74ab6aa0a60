from django.apps import AppConfig


class AuditAppConfig(AppConfig):
    name = "audit_app"
    label = "audit_app"
    verbose_name = "Audit history"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db import connections
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        # Imported once the app registry is ready (models loaded), as Django asks of
        # modules that register checks and signal handlers.
        from audit_app import (  # noqa: F401
            autodetector,
            checks,
            commands,
            following,
            installation,
            runtime,
        )

        # Before anything reads the models' state: follows add indexes to event models.
        following.resolve_all()

        connection_created.connect(_on_connection_created, dispatch_uid="audit_app_context")
        for connection in connections.all(initialized_only=True):
            runtime.install(connection)
        post_migrate.connect(installation.post_migrate, sender=self, dispatch_uid="audit_app")
        commands.install()
        autodetector.install()


def _on_connection_created(sender, connection, **kwargs) -> None:
    # apps.py is imported while the app registry loads; the runtime only when needed.
    from audit_app.runtime import install

    install(connection)
