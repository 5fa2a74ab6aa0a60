"""Install the database objects that migrations normally create.

Test databases built without migrations (``--no-migrations``, ``MIGRATE: False``)
would otherwise lack the context function and the triggers, and every tracked write
would fail or go unrecorded. This runs after every ``migrate`` and only adds what is
missing.
"""

from __future__ import annotations

from typing import Any

import pgtrigger
import pgtrigger.core
from django.db import connections

from audit_app import partitioning, sql
from audit_app.registry import event_models
from audit_app.triggers import AuditTrigger


def install_context_function(using: str = "default") -> None:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(sql.CONTEXT_FUNCTION_SQL)


def our_triggers() -> list[tuple[Any, AuditTrigger]]:
    return [(m, t) for m, t in pgtrigger.registered() if isinstance(t, AuditTrigger)]


def install_missing_triggers(using: str = "default") -> list[str]:
    """Install our triggers that are absent from ``using``; return their URIs."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    tables = set(connection.introspection.table_names())
    installed = []
    for model, trigger in our_triggers():
        if model._meta.db_table not in tables or not trigger.allow_migrate(model, using):
            continue
        status, _ = trigger.get_installation_status(model, database=using)
        if status == pgtrigger.core.UNINSTALLED:
            trigger.install(model, database=using)
            installed.append(trigger.get_uri(model))
    return installed


def partition_declared_tables(using: str = "default") -> list[str]:
    """Partition the empty event tables that ``track(partition=...)`` declares but the
    database holds plain (a test database built without migrations); return them."""
    connection = connections[using]
    tables = set(connection.introspection.table_names())
    converted = []
    for event_model in event_models():
        table = event_model._meta.db_table
        interval = getattr(event_model, "audit_partition", None)
        if not interval or table not in tables or partitioning.is_partitioned(table, using):
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {sql.quote(table)})")
            if cursor.fetchone()[0]:
                continue  # history: converting it is ``audit partition``'s job
        partitioning.convert(table, interval, using=using, concurrently=False)
        converted.append(table)
    return converted


def post_migrate(using: str = "default", **kwargs: Any) -> None:
    if connections[using].vendor != "postgresql":
        return
    install_context_function(using)
    install_missing_triggers(using)
    partition_declared_tables(using)
    # Partitions for this interval and the next two; strays leave the safety net.
    partitioning.maintain(using)
