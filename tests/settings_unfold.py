"""Test settings with django-unfold and our unfold theme (``tests/e2e/unfold/``).

As unfold's docs ask: ``unfold`` before ``django.contrib.admin`` and the project's
ModelAdmins on ``unfold.admin.ModelAdmin`` (``tests/unfold_shop``).
"""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = ["unfold", *INSTALLED_APPS, "tests.unfold_shop"]  # noqa: F405
AUDIT_ADMIN_THEME = "unfold"
