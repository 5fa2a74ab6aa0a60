"""The unfold theme in Chromium: ``tests/e2e/unfold_pages.py`` in a pytest of its own.

Django's settings are per process, and unfold replaces the admin site when its app
loads, so the themed pages run under ``--ds tests.settings_unfold`` in a subprocess
(as ``tests/test_installation.py`` builds a database without migrations).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_pages_under_django_unfold():
    pytest.importorskip("unfold", reason="django-unfold is part of the dev extra")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "tests" / "e2e" / "unfold_pages.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            "--ds",
            "tests.settings_unfold",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout
