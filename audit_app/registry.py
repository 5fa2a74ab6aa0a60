"""Which models are tracked, and their generated event models.

Read from the app registry on each call (nothing is cached here), so a model tracked in a
test's isolated apps is seen like any other. Every module that asks "which tables hold
events" asks here; the module that creates event models (``tracking``) only writes the
``audit_event_model`` attribute these functions read.
"""

from __future__ import annotations

from django.apps import apps
from django.db import models

from audit_app.exceptions import TrackingError


def tracked_models() -> list[type[models.Model]]:
    """Every model with an event model, in app-registry order."""
    return [
        m for m in apps.get_models(include_auto_created=True) if "audit_event_model" in m.__dict__
    ]


def event_models() -> list[type[models.Model]]:
    """Every generated event model, in app-registry order."""
    return [m.audit_event_model for m in tracked_models()]


def event_model_of(model: type[models.Model]) -> type[models.Model]:
    """The event model of a tracked model, or TrackingError with the fix."""
    event_model = model.__dict__.get("audit_event_model")
    if event_model is None:
        raise TrackingError(
            f"{model._meta.label} is not tracked; decorate it with @audit_app.track()."
        )
    return event_model
