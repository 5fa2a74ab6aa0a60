"""Helpers of the reliability tests: fresh raw connections and extra database aliases."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection, connections
from django.db.utils import load_backend


def server_params(**overrides: Any) -> dict[str, Any]:
    """libpq parameters of the test database, as the default Django alias reaches it."""
    settings = connection.settings_dict
    params = {
        "host": settings["HOST"],
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "password": settings["PASSWORD"] or None,
        "port": settings["PORT"] or None,
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def fresh() -> Iterator[Callable[..., psycopg.Connection]]:
    """Open raw psycopg connections (autocommit) that bypass Django entirely.

    Used to look at the database from outside the connection under test, and to
    terminate or inspect that connection's backend.
    """
    opened: list[psycopg.Connection] = []

    def connect(**overrides: Any) -> psycopg.Connection:
        conn = psycopg.connect(**server_params(**overrides), autocommit=True)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@contextlib.contextmanager
def database_alias(alias: str, **overrides: Any) -> Iterator[Any]:
    """Give the current thread a connection under ``alias``: a copy of ``default`` with
    ``overrides`` (another host, port, user...), usable with ``.using(alias)`` and
    ``transaction.atomic(alias)``; yield it, and close and remove it on exit.

    The alias is not added to ``settings.DATABASES``: Django's test case allows such
    dynamically created connections from any thread, and each thread that needs one
    opens its own, as Django does for configured aliases.
    """
    settings = {**connections["default"].settings_dict, **overrides}
    settings["OPTIONS"] = {**settings.get("OPTIONS", {}), **overrides.get("OPTIONS", {})}
    wrapper = load_backend(settings["ENGINE"]).DatabaseWrapper(settings, alias)
    connections[alias] = wrapper
    try:
        yield wrapper
    finally:
        with contextlib.suppress(Exception):
            wrapper.close()
        with contextlib.suppress(AttributeError):
            del connections[alias]
