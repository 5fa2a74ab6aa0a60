"""Helpers for test suites of projects that use append-only audit history."""

from __future__ import annotations

import functools
from typing import Any


def allow_flush_of_append_only_tables() -> None:
    """Let Django's test flush TRUNCATE append-only event tables.

    ``TransactionTestCase`` (and pytest-django's ``transactional_db``) empty every table
    with TRUNCATE between tests, which append-only event tables refuse. This patches the
    flush to run with ``session_replication_role = replica``, which skips ordinary
    triggers for that one transaction. Setting it needs superuser rights (or, on
    PostgreSQL 15+, a grant of SET on that parameter), which a test database user
    normally has and a production application role must not. Call it once, e.g. in
    ``conftest.py``.
    """
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.execute_sql_flush
    if getattr(original, "audit_wrapped", False):
        return

    @functools.wraps(original)
    def execute_sql_flush(self: Any, sql_list: list[str]) -> None:
        original(self, ["SET LOCAL session_replication_role = replica", *sql_list])

    execute_sql_flush.audit_wrapped = True  # type: ignore[attr-defined]
    DatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
