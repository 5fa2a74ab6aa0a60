"""Shared fixtures. The test settings start a throw-away embedded PostgreSQL."""

import pytest
from django.db import connection


@pytest.fixture
def sql_log():
    """Capture the SQL sent by the code under test (debug cursor on)."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        yield ctx
