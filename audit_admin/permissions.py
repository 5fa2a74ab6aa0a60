"""Model permissions as the admin asks for them, including for auto-created m2m tables."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_permission_codename
from django.db import models


def has_model_permission(user: Any, model: type[models.Model], action: str) -> bool:
    """Whether ``user`` has the ``action`` ("view", "change", "add"...) permission on ``model``.

    An auto-created m2m table has no permissions of its own; the admin asks the model
    that declares the relation, and so do we.
    """
    opts = model._meta
    if opts.auto_created:
        opts = opts.auto_created._meta
    return user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


def may_view_model(user: Any, model: type[models.Model]) -> bool:
    """Whether ``user`` may view ``model`` (view or change permission, as the admin asks)."""
    return any(has_model_permission(user, model, action) for action in ("view", "change"))


def may_change_model(user: Any, model: type[models.Model], action: str = "change") -> bool:
    """Whether ``user`` has the ``action`` ("change", "add") permission on ``model``."""
    return has_model_permission(user, model, action)
