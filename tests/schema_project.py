"""A throw-away Django project whose tracked model changes schema, as a user's would.

Each step rewrites the app's ``models.py`` and runs the real ``makemigrations`` and
``migrate`` in a child process (a model cannot be redefined inside one process), on a
database of its own on the test server. ``run()`` executes code in the project and
returns what it prints as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import psycopg
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

SETTINGS = """
from config.settings import *  # noqa: F403

INSTALLED_APPS = [a for a in INSTALLED_APPS if a != "shop"] + ["histapp"]  # noqa: F405
DATABASES = {"default": %(database)r}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
AUDIT_SEAL_KEY = "schema-project-seal-key-0123456789abcdef"
"""

ADMIN = """
from django.contrib import admin

from audit_admin import AuditModelAdmin
from histapp.models import Account


@admin.register(Account)
class AccountAdmin(AuditModelAdmin):
    pass
"""

PRELUDE = """
import json, django
django.setup()
from audit_app.models import AuditEvent
from histapp.models import *
"""


class SchemaProject:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.app = folder / "histapp"
        (self.app / "migrations").mkdir(parents=True)
        for name in ("__init__.py", "migrations/__init__.py"):
            (self.app / name).write_text("")
        (self.app / "admin.py").write_text(ADMIN)
        self.database = f"schema_{uuid.uuid4().hex[:12]}"
        settings = {**connection.settings_dict}
        self._admin(f'CREATE DATABASE "{self.database}"')
        database = {
            key: settings[key] for key in ("ENGINE", "USER", "PASSWORD", "HOST", "PORT")
        } | {"NAME": self.database}
        (folder / "histsettings.py").write_text(SETTINGS % {"database": database})

    def _admin(self, statement: str) -> None:
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params["dbname"] = "postgres"
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute(statement)

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def admin(self, source: str) -> None:
        """Write the app's admin.py (dedented)."""
        self.app.joinpath("admin.py").write_text(textwrap.dedent(source))

    def models(self, source: str) -> None:
        """Write the app's models.py (dedented)."""
        self.app.joinpath("models.py").write_text(textwrap.dedent(source))

    def _child(self, args: list[str], stdin: str | None = None, *, fail: bool = False) -> str:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            DJANGO_SETTINGS_MODULE="histsettings",
            # config.settings reads DATABASES from here before ours replace them; a URL
            # keeps it from starting an embedded server of its own.
            DATABASE_URL="postgres://unused@localhost/unused",
            PYTHONPATH=os.pathsep.join(
                [str(self.folder), str(ROOT), str(ROOT / "example_project")]
            ),
        )
        done = subprocess.run(
            [sys.executable, *args],
            cwd=self.folder,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if fail:
            assert done.returncode != 0, f"{args} did not fail:\n{done.stdout}"
            return done.stdout + done.stderr
        if done.returncode != 0:
            raise AssertionError(f"{args} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def manage(self, *args: str, stdin: str | None = None) -> str:
        return self._child(["-m", "django", *args], stdin)

    def manage_fails(self, *args: str) -> str:
        """Run a management command that must fail; return its error output."""
        return self._child(["-m", "django", *args], fail=True)

    def makemigrations(self, *args: str, stdin: str | None = None) -> str:
        options = [] if stdin is not None else ["--noinput"]
        return self.manage("makemigrations", "histapp", *options, *args, stdin=stdin)

    def migrate(self, *args: str) -> str:
        return self.manage("migrate", "--noinput", *args)

    def migration(self, name: str) -> str:
        """The text of the migration file whose name starts with ``name``."""
        return next(self.app.glob(f"migrations/{name}*.py")).read_text()

    def run(self, code: str) -> object:
        """Run ``code`` in the project; it prints one JSON value, which is returned."""
        output = self._child(["-c", PRELUDE + textwrap.dedent(code)])
        return json.loads(output.strip().splitlines()[-1])
