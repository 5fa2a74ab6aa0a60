"""Test settings: the example shop plus models that exercise edge cases of tracking."""

import os

os.environ.setdefault("AUDIT_DB_PURPOSE", "test")

from config.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.trackapp"]  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins
DEBUG = False
ROOT_URLCONF = "tests.urls"

# Sends TEST_CONTENT_SECURITY_POLICY as a Content-Security-Policy header when a test
# sets it (tests/e2e/test_csp.py); does nothing otherwise.
MIDDLEWARE = ["tests.security.csp.ContentSecurityPolicyMiddleware", *MIDDLEWARE]  # noqa: F405
TEST_CONTENT_SECURITY_POLICY = None

# A second, independent database on the same server: history lives with its data in
# each database a router sends models to (tests/test_multiple_databases.py).
DATABASES["second"] = {**DATABASES["default"], "NAME": "audit_second"}  # noqa: F405
