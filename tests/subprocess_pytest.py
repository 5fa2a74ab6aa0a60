"""Run pytest in a child process with settings of its own (Django settings are per process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(target: Path, settings: str, *options: str) -> subprocess.CompletedProcess:
    """Run the tests in ``target`` under ``--ds settings``, with this project's config."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-m", "pytest", str(target), *options, "-q", "-p",
               "no:cacheprovider", "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
               "--ds", settings]  # fmt: skip
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
