"""Shared fixtures. The test settings start a throw-away embedded PostgreSQL."""

import pytest
from django.contrib.auth.models import Permission
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


@pytest.fixture(scope="session", autouse=True)
def column_history_read(django_db_setup, django_db_blocker):
    """Read the event tables' column history once, as a server process does on its
    first query, so that tests counting queries count only their own."""
    from audit_app.column_history import load

    with django_db_blocker.unblock():
        load()


@pytest.fixture
def editor(django_user_model):
    """Staff with every shop permission plus revert and export, like the demo's editor."""
    user = django_user_model.objects.create_user("editor", password="editor", is_staff=True)
    perms = Permission.objects.filter(content_type__app_label="shop") | Permission.objects.filter(
        codename__in=["revert_auditevent", "export_auditevent"]
    )
    user.user_permissions.set(perms)
    return user


@pytest.fixture
def viewer(django_user_model):
    """Staff who may only view the shop, like the demo's viewer."""
    user = django_user_model.objects.create_user("viewer", password="viewer", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="shop", codename__startswith="view_")
    )
    return user


# The standby once started (at most one): ``pytest_runtest_setup`` shows it to the tests
# that use it and hides it from the others.
_standby_servers: list = []


@pytest.fixture(scope="session")
def standby_server(django_db_setup, django_db_blocker):
    """``DATABASES["replica"]``: a streaming hot standby of the test server, holding the
    test database by replication. Started once, by the first test that needs it.

    Marked as a test mirror of "default" (which, streamed, it is), so that test cases
    never flush it: a standby refuses writes. Tests using it commit their data
    (``transaction=True``) and list it: ``databases=["default", "replica"]``. The alias
    exists only during the tests that use the ``replica`` fixture.
    """
    from tests import standby

    reason = standby.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with django_db_blocker.unblock():
        server = standby.start()
    _standby_servers.append(server)
    standby.expose(server)
    yield server
    _standby_servers.clear()
    standby.hide()
    server.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before the test case's setup: Django checks its ``databases`` against DATABASES.
    if _standby_servers:
        from tests import standby

        if "replica" in getattr(item, "fixturenames", ()):
            standby.expose(_standby_servers[0])
        else:
            standby.hide()


@pytest.fixture
def replica(standby_server):
    """The standby helpers (``tests.standby``), with the standby caught up with the
    primary before the test and replaying again after it."""
    from tests import standby

    standby.wait_for_replay()
    try:
        yield standby
    finally:
        standby.resume_replay()


@pytest.fixture
def partitioned_models():
    """The models whose event tables ``layout`` partitions; a module may narrow it.

    The shop's orders are partitioned by their declaration (shop migration 0006).
    """
    from shop.models import Customer, DigitalProduct, Product
    from tests.trackapp.models import Invoice, RowWidget, Widget

    return [Widget, RowWidget, Invoice, Customer, Product, DigitalProduct]


@pytest.fixture(params=["plain", "partitioned"])
def layout(request, db, partitioned_models):
    """Run the test on plain event tables, then on the same tables partitioned by month
    (converted inside the test's transaction, which rolls back)."""
    from tests.partition_helpers import partition

    if request.param == "partitioned":
        assert "transactional_db" not in request.fixturenames, "a conversion would outlive it"
        partition(*partitioned_models)
    return request.param
