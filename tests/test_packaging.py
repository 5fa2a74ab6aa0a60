"""The wheel, installed in a clean virtualenv, serves our templates and static files.

In a source checkout ``templates/`` and ``static/`` sit at the repository root; this
proves the built wheel carries them inside ``audit_admin`` where Django finds them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "audit_admin/base.html"
STATIC_FILES = ("audit_admin/css/audit_admin.css", "audit_admin/js/audit_admin.js")
# The unfold theme (AUDIT_ADMIN_THEME = "unfold") ships in the wheel too.
THEME_FILES = (
    "audit_admin/templates/audit_admin/themes/unfold/base.html",
    "audit_admin/templates/audit_admin/themes/unfold/events/change_list.html",
    "audit_admin/static/audit_admin/css/themes/unfold.css",
)

# Runs inside the clean virtualenv: minimal settings, no database access.
CHECK_SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    import sysconfig
    from pathlib import Path

    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "pgtrigger",
            "django_filters",
            "django_tables2",
            "audit_app",
            "audit_admin",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {"context_processors": []},
            }
        ],
        STATIC_URL="/static/",
        DATABASES={},
    )
    django.setup()

    from django.contrib.staticfiles import finders
    from django.template.loader import get_template

    import audit_admin
    import audit_app

    template = get_template(sys.argv[1])
    print(json.dumps({
        "site_packages": sysconfig.get_path("purelib"),
        "audit_admin": str(Path(audit_admin.__file__).parent),
        "audit_app": str(Path(audit_app.__file__).parent),
        "template": template.origin.name,
        "template_source": Path(template.origin.name).read_text(),
        "static": {name: finders.find(name) for name in sys.argv[2:]},
    }))
    """
)


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO_ROOT, cwd=dist)
    (wheel,) = dist.glob("django_audit_admin-*.whl")
    return wheel


def test_wheel_contains_templates_static_files_and_type_marker(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())

    assert f"audit_admin/templates/{TEMPLATE}" in names
    for name in STATIC_FILES:
        assert f"audit_admin/static/{name}" in names
    assert "audit_app/py.typed" in names
    assert set(THEME_FILES) <= names
    assert not [n for n in names if n.startswith(("tests/", "example_project/", "bench/"))]


def test_installed_wheel_serves_templates_and_static_files(wheel, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv_python(venv)
    # Nothing from this checkout or the test run may leak into the clean interpreter.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path, env=env)
    script = tmp_path / "check.py"
    script.write_text(CHECK_SCRIPT)

    found = json.loads(run(python, script, TEMPLATE, *STATIC_FILES, cwd=tmp_path, env=env))

    site_packages = Path(found["site_packages"])
    assert Path(found["audit_admin"]) == site_packages / "audit_admin"
    assert Path(found["audit_app"]) == site_packages / "audit_app"
    template = Path(found["template"])
    assert template == site_packages / "audit_admin" / "templates" / TEMPLATE
    assert '{% extends "admin/base_site.html" %}' in found["template_source"]
    for name in STATIC_FILES:
        assert found["static"][name] is not None, f"{name} not found by the static finders"
        assert Path(found["static"][name]) == site_packages / "audit_admin" / "static" / name
