"""Settings for the probe that builds its test database without migrations.

The shop is left out: Django's syncdb cannot build a proxy of an auto-created
many-to-many table (shop.ProductTag), a limitation of Django's project state.
"""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "shop"]  # noqa: F405
ROOT_URLCONF = "tests.urls_nomigrations"
