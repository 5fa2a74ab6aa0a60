"""System checks: each id fires in its situation and ids are unique."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import override_settings

import audit_app.checks as audit_checks

AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
OURS = "audit_app.middleware.AuditContextMiddleware"


def ids(messages):
    return [m.id for m in messages]


def test_clean_project_passes():
    assert audit_checks.check_database() == []
    assert audit_checks.check_apps_and_middleware() == []


@pytest.fixture
def one_database(monkeypatch):
    """The checks see only the default database (the test settings have a second one)."""
    monkeypatch.setattr(audit_checks, "settings", SimpleNamespace(DATABASES={"default": {}}))


def test_e001_non_postgresql_default(monkeypatch, one_database):
    fake = {"default": SimpleNamespace(vendor="mysql", settings_dict={})}
    monkeypatch.setattr(audit_checks, "connections", fake)
    (error,) = audit_checks.check_database()
    assert error.id == "audit_app.E001" and "ENGINE" in error.hint


def test_e002_pgtrigger_missing(monkeypatch):
    monkeypatch.setattr(audit_checks.apps, "is_installed", lambda name: name != "pgtrigger")
    assert "audit_app.E002" in ids(audit_checks.check_apps_and_middleware())


def test_e003_server_side_binding(monkeypatch):
    from django.db import connection

    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {"server_side_binding": True})
    (error,) = audit_checks.check_database()
    assert error.id == "audit_app.E003" and "server_side_binding" in error.hint


def test_e004_psycopg2(monkeypatch, one_database):
    import django.db.backends.postgresql.psycopg_any as psycopg_any

    monkeypatch.setattr(psycopg_any, "is_psycopg3", False)
    assert ids(audit_checks.check_database()) == ["audit_app.E004"]


def test_w001_middleware_missing(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != OURS]
    assert ids(audit_checks.check_apps_and_middleware()) == ["audit_app.W001"]


def test_w002_middleware_before_authentication(settings):
    rest = [m for m in settings.MIDDLEWARE if m not in (OURS, AUTH)]
    with override_settings(MIDDLEWARE=[OURS, *rest, AUTH]):
        (warning,) = audit_checks.check_apps_and_middleware()
    assert warning.id == "audit_app.W002" and "below" in warning.hint


@pytest.mark.parametrize("package", ["audit_app", "audit_admin"])
def test_check_ids_are_unique(package):
    root = Path(__file__).resolve().parents[1] / package
    found = re.findall(
        r'id="([a-z_]+\.[EWI]\d{3})"', "".join(p.read_text() for p in root.rglob("*.py"))
    )
    assert len(found) == len(set(found))


def test_audit_admin_checks(monkeypatch):
    from django.contrib import admin

    import audit_admin.checks as admin_checks
    from audit_admin.mixins import AuditModelAdmin
    from tests.trackapp.models import Color

    assert admin_checks.check_installed_apps() == []
    assert admin_checks.check_history_admins() == []
    monkeypatch.setattr(admin_checks.apps, "is_installed", lambda name: name != "django_tables2")
    assert ids(admin_checks.check_installed_apps()) == ["audit_admin.E003"]
    admin.site.register(Color, AuditModelAdmin)
    try:
        (error,) = admin_checks.check_history_admins()
    finally:
        admin.site.unregister(Color)
    assert error.id == "audit_admin.E004" and "not tracked" in error.msg


def test_audit_admin_theme_checks(monkeypatch, settings):
    import audit_admin.checks as admin_checks

    installed = {"unfold"}
    monkeypatch.setattr(
        admin_checks.apps, "is_installed", lambda name: name in installed or name != "unfold"
    )
    # Without unfold and without a theme: nothing to say.
    installed.clear()
    assert admin_checks.check_theme() == []
    # unfold installed, the theme not set: W001, with the fix.
    installed.add("unfold")
    (warning,) = admin_checks.check_theme()
    assert warning.id == "audit_admin.W001" and "AUDIT_ADMIN_THEME = 'unfold'" in warning.hint
    settings.AUDIT_ADMIN_THEME = "unfold"
    assert admin_checks.check_theme() == []
    # A theme whose app is not installed: E006.
    installed.clear()
    (error,) = admin_checks.check_theme()
    assert error.id == "audit_admin.E006" and "INSTALLED_APPS" in error.hint
    # A name no template folder provides, or no name at all: E005.
    for theme in ("unfld", "../admin", ["unfold"]):
        settings.AUDIT_ADMIN_THEME = theme
        (error,) = admin_checks.check_theme()
        assert error.id == "audit_admin.E005" and "AUDIT_ADMIN_THEME" in error.hint
