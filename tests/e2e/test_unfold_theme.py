"""The unfold theme in Chromium: ``tests/e2e/unfold_pages.py`` in a pytest of its own.

Django's settings are per process, and unfold replaces the admin site when its app
loads, so the themed pages run under ``--ds tests.settings_unfold`` in a subprocess
(as ``tests/test_installation.py`` builds a database without migrations).
"""

from __future__ import annotations

import pytest

from tests.subprocess_pytest import ROOT, run_pytest


@pytest.mark.e2e
def test_pages_under_django_unfold():
    pytest.importorskip("unfold", reason="django-unfold is part of the dev extra")
    result = run_pytest(ROOT / "tests" / "e2e" / "unfold_pages.py", "tests.settings_unfold")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout
