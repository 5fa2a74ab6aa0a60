"""Shared fixtures. The test settings start a throw-away embedded PostgreSQL."""

import pytest
from django.db import connection


@pytest.fixture
def sql_log():
    """Capture the SQL sent by the code under test (debug cursor on)."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        yield ctx


def pytest_configure(config):
    from audit_app.testing import allow_flush_of_append_only_tables

    # trackapp.Invoice keeps append-only history; transactional tests flush it.
    allow_flush_of_append_only_tables()
