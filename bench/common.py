"""Small helpers shared by the benchmark scripts (import after django.setup())."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.db import connection

from audit_app import sql as audit_sql


def log(message: str) -> None:
    """A timestamped progress line on stderr, so stdout keeps only the results."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def execute(statement: str, params: Any = None) -> list[tuple]:
    """Run one statement on the default connection; its rows, if it returns any."""
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def q(name: str) -> str:
    return audit_sql.quote(name)
