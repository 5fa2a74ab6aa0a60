"""Test settings: the example shop plus models that exercise edge cases of tracking."""

import os

os.environ.setdefault("AUDIT_DB_PURPOSE", "test")

from config.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.trackapp"]  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins
DEBUG = False
ROOT_URLCONF = "tests.urls"
