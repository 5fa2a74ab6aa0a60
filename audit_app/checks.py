"""System checks of the tracking core; ids are stable and documented in docs/settings.md."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils.translation import ngettext

from audit_app import conf, partitioning, seal_keys, sealing_sql
from audit_app.following import resolve
from audit_app.registry import tracked_models

MIDDLEWARE = "audit_app.middleware.AuditContextMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@checks.register(checks.Tags.database, checks.Tags.compatibility)
def check_database(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for alias in settings.DATABASES:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            if alias == "default":
                errors.append(
                    checks.Error(
                        f"Database {alias!r} uses the {connection.vendor} backend; audit history "
                        "is written by PostgreSQL triggers.",
                        hint="Set DATABASES['default']['ENGINE'] to "
                        "'django.db.backends.postgresql'.",
                        id="audit_app.E001",
                    )
                )
            continue
        options = connection.settings_dict.get("OPTIONS", {})
        if options.get("server_side_binding"):
            errors.append(
                checks.Error(
                    f"Database {alias!r} enables psycopg server-side binding, which refuses the "
                    "two-statement queries that carry audit context to the triggers; events "
                    "would lose their user and request.",
                    hint=f"Remove 'server_side_binding' from DATABASES[{alias!r}]['OPTIONS'].",
                    id="audit_app.E003",
                )
            )
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        if not is_psycopg3:
            errors.append(
                checks.Error(
                    f"Database {alias!r} runs on psycopg2; audit context needs psycopg 3.",
                    hint="pip install 'psycopg[binary]>=3.1.8' (Django then uses it).",
                    id="audit_app.E004",
                )
            )
    return errors


@checks.register(checks.Tags.compatibility)
def check_apps_and_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if not apps.is_installed("pgtrigger"):
        errors.append(
            checks.Error(
                "'pgtrigger' is not in INSTALLED_APPS; the capture triggers would never be "
                "migrated.",
                hint="Add 'pgtrigger' to INSTALLED_APPS.",
                id="audit_app.E002",
            )
        )
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE not in middleware:
        errors.append(
            checks.Warning(
                f"{MIDDLEWARE} is not in MIDDLEWARE; changes made by requests are recorded "
                "without user, URL or request id.",
                hint=f"Add '{MIDDLEWARE}' to MIDDLEWARE after '{AUTH_MIDDLEWARE}'.",
                id="audit_app.W001",
            )
        )
    elif AUTH_MIDDLEWARE in middleware and middleware.index(MIDDLEWARE) < middleware.index(
        AUTH_MIDDLEWARE
    ):
        errors.append(
            checks.Warning(
                f"{MIDDLEWARE} comes before {AUTH_MIDDLEWARE}; the user is only known once "
                "authentication has run.",
                hint=f"Move '{MIDDLEWARE}' below '{AUTH_MIDDLEWARE}'.",
                id="audit_app.W002",
            )
        )
    return errors


# -- sealed history (docs/integrity.md) ------------------------------------------------------


@checks.register(checks.Tags.security)
def check_seal_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Seal key settings that cannot work (E010) or are weak (W011)."""
    errors: list[checks.CheckMessage] = [
        checks.Error(
            problem,
            hint="Fix the key file setting, or remove it to authenticate with AUDIT_SEAL_KEY.",
            id="audit_app.E010",
        )
        for problem in seal_keys.key_file_problems()
    ]
    short = [key for key in conf.seal_keys() if len(key) < seal_keys.MIN_KEY_BYTES]
    if short:
        errors.append(
            checks.Warning(
                f"AUDIT_SEAL_KEY holds a key of {len(short[0])} bytes; a key that short can be "
                "guessed, and with it sealed history rewritten undetectably.",
                hint="Use at least 32 random bytes: python -c 'import secrets; "
                "print(secrets.token_hex(32))'.",
                id="audit_app.W011",
            )
        )
    return errors


@checks.register(checks.Tags.database)
def check_sealed_history_has_a_key(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Sealed history exists but no key is set to seal or verify it (W010)."""
    if seal_keys.configured():
        return []
    warnings: list[checks.CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [sealing_sql.SEAL_TABLE])
            if not cursor.fetchone()[0]:
                continue
            cursor.execute(f"SELECT count(*) FROM {sealing_sql.SEAL_TABLE}")
            records = cursor.fetchone()[0]
        if records:
            warnings.append(
                checks.Warning(
                    f"Database {alias!r} holds "
                    + ngettext("%(n)d seal record", "%(n)d seal records", records) % {"n": records}
                    + ", but no seal key is set: audit seal and audit verify cannot run, and "
                    "prunes leave no record.",
                    hint="Set AUDIT_SEAL_KEY (or AUDIT_SEAL_PRIVATE_KEY_FILE / "
                    "AUDIT_SEAL_PUBLIC_KEY_FILE) to the key that sealed this history.",
                    id="audit_app.W010",
                )
            )
    return warnings


# One stable id per kind of follow problem (audit_app.following.FollowProblem.kind).
FOLLOW_CHECK_IDS = {
    "unknown": "audit_app.E013",
    "not_followable": "audit_app.E014",
    "untracked": "audit_app.E015",
}


@checks.register(checks.Tags.compatibility)
def check_partitions(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Partitioned event tables with no partition for the next interval, or with events
    in their safety net.

    Not a database-tagged check on purpose: ``runserver`` and the other commands run it
    at startup, where a missing partition is worth a warning before it fills the safety
    net. Without a reachable database it says nothing.
    """
    warnings = []
    for alias in kwargs.get("databases") or [DEFAULT_DB_ALIAS]:
        if connections[alias].vendor != "postgresql":
            continue
        try:
            found = [
                problem
                for table, _interval in partitioning.partitioned_tables(alias)
                for problem in partitioning.problems(table, using=alias)
            ]
        except DatabaseError:
            continue  # no database yet: migrate prepares the partitions
        warnings += [
            checks.Warning(
                f"{problem} (database {alias!r}).",
                hint="Run manage.py audit partitions (daily from cron, see docs/scaling.md).",
                id="audit_app.W012",
            )
            for problem in found
        ]
    return warnings


def follow_errors(problems: Any) -> list[checks.CheckMessage]:
    """One error per follow problem (``audit_app.following.FollowProblem``)."""
    return [
        checks.Error(p.message, hint=p.hint, obj=p.model, id=FOLLOW_CHECK_IDS[p.kind])
        for p in problems
    ]


@checks.register(checks.Tags.models)
def check_follows(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return follow_errors(p for model in tracked_models() for p in resolve(model)[1])


# -- replicas (docs/scaling.md#replicas) -----------------------------------------------------


@checks.register(checks.Tags.compatibility)
def check_read_database(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``AUDIT_READ_DATABASE`` names no database (E020) or one that is not PostgreSQL (E021)."""
    alias = getattr(settings, "AUDIT_READ_DATABASE", "default")
    aliases = list(settings.DATABASES)
    if not isinstance(alias, str) or alias not in aliases:
        return [
            checks.Error(
                f"AUDIT_READ_DATABASE is {alias!r}, which is not an alias of DATABASES "
                f"({', '.join(map(repr, aliases))}); the event browser and exports could "
                "not read history.",
                hint="Set AUDIT_READ_DATABASE to the alias of your replica in DATABASES, or "
                "remove it to read from 'default'.",
                id="audit_app.E020",
            )
        ]
    if connections[alias].vendor != "postgresql":
        return [
            checks.Error(
                f"AUDIT_READ_DATABASE is {alias!r}, which uses the "
                f"{connections[alias].vendor} backend; history is read with PostgreSQL SQL.",
                hint=f"Point DATABASES[{alias!r}] at a PostgreSQL replica of 'default'.",
                id="audit_app.E021",
            )
        ]
    return []
