"""Context under PgBouncer transaction pooling (research C6): never leaked, never lost.

A real PgBouncer (Debian package ``pgbouncer``) runs in ``pool_mode = transaction`` on
127.0.0.1 in front of the test database, with fewer server connections than clients.
Django reaches it through database aliases added at run time, so the ORM and the
context hand-over of ``audit_app.runtime`` are the ones under test.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection, connections, transaction

import audit_app
from audit_app import sql
from tests.reliability.conftest import database_alias
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db(transaction=True)

INSTALL_HINT = (
    "PgBouncer is not installed, so the transaction-pooling tests cannot run. Install it: "
    "`apt-get install -y pgbouncer` (Debian/Ubuntu; .ci/run does this), "
    "`brew install pgbouncer` (macOS), or put a `pgbouncer` binary on PATH."
)
POOLED = "reliability_pooled"  # PgBouncer database with POOL_SIZE server connections
SINGLE = "reliability_single"  # PgBouncer database with one server connection
POOL_SIZE = 2
CLIENTS = 6
UNITS = 60


def _binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    for path in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer"):
        if os.access(path, os.X_OK):
            return path
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unprivileged_user() -> str | None:
    """PgBouncer refuses to run as root; it switches to this user (``user =``) when we are."""
    if os.geteuid() != 0:
        return None
    for name in ("pgserver", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    pytest.fail("running as root, and neither user 'pgserver' nor 'nobody' exists for PgBouncer")


@pytest.fixture(scope="module")
def pgbouncer(django_db_setup, django_db_blocker):
    """Start PgBouncer in front of the test database; yield its port."""
    binary = _binary()
    if binary is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    settings = connection.settings_dict
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SHOW port")
        server_port = cursor.fetchone()[0]
    connection.close()
    host = settings["HOST"] or "/var/run/postgresql"
    name, user = settings["NAME"], settings["USER"]
    server = f"host={host} port={server_port} dbname={name} user={user}"
    workdir = Path(tempfile.mkdtemp(prefix="audit-pgbouncer-"))
    workdir.chmod(0o755)
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    run_as = _unprivileged_user()
    log = workdir / "pgbouncer.log"
    process = None
    try:
        for _attempt in range(5):
            port = _free_port()
            ini = workdir / "pgbouncer.ini"
            ini.write_text(
                "[databases]\n"
                f"{POOLED} = {server} pool_size={POOL_SIZE}\n"
                f"{SINGLE} = {server} pool_size=1\n"
                "[pgbouncer]\n"
                "listen_addr = 127.0.0.1\n"
                f"listen_port = {port}\n"
                "unix_socket_dir =\n"
                "auth_type = trust\n"
                f"auth_file = {workdir / 'userlist.txt'}\n"
                "pool_mode = transaction\n"
                "max_client_conn = 200\n"
                "ignore_startup_parameters = extra_float_digits,options\n"
                + (f"user = {run_as}\n" if run_as else "")
            )
            for path in workdir.iterdir():
                path.chmod(0o644)
            with log.open("ab") as out:
                process = subprocess.Popen([binary, str(ini)], stdout=out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    psycopg.connect(
                        host="127.0.0.1", port=port, dbname=SINGLE, user=user, connect_timeout=2
                    ).close()
                    break
                except psycopg.OperationalError:
                    time.sleep(0.05)
            if process.poll() is None:
                break
            process = None  # the port was taken meanwhile, or it failed: try again
        if process is None or process.poll() is not None:
            pytest.fail(f"PgBouncer did not start:\n{log.read_text()}", pytrace=False)
        yield port
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def bouncer(pgbouncer):
    """Open Django connections (of this thread) through PgBouncer: ``bouncer(alias, db)``."""

    def alias(name, database):
        return database_alias(
            name,
            HOST="127.0.0.1",
            PORT=str(pgbouncer),
            NAME=database,
            DISABLE_SERVER_SIDE_CURSORS=True,
        )

    return alias


def backend_pid(using):
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def event_contexts():
    """name -> context metadata (None without context) of every Widget event."""
    table = sql.quote(Widget.audit_event_model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT e.name, e.audit_label, e.audit_context_id, c.metadata FROM {table} AS e "
            f"LEFT JOIN {sql.quote(sql.CONTEXT_TABLE)} AS c ON c.id = e.audit_context_id"
        )
        rows = cursor.fetchall()
    found = {}
    for name, label, context_id, metadata in rows:
        assert context_id is None or metadata is not None, f"dangling context of {name}"
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        found[(name, label)] = metadata
    assert len(found) == len(rows), "an event was recorded twice"
    return found


def test_interleaved_pooled_clients_never_see_each_others_context(bouncer):
    """CLIENTS threads share POOL_SIZE server connections. Each writes in its own
    contexts (changing per unit and per statement), sometimes without any context, in
    autocommit and in transactions that sleep between statements so that they overlap.
    Every event must carry exactly the context its client wrote it in."""
    expected = {}
    pids = {}
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(i):
        rng = random.Random(i)
        mine = {}
        own_pids = set()
        rows = []

        def write(nonce):
            ctx = audit_app.current_context()
            if rows and rng.random() < 0.5:
                pk = rng.choice(rows)
                assert Widget.objects.using("pooled").filter(pk=pk).update(name=nonce) == 1
                mine[(nonce, "update")] = ctx
            else:
                rows.append(Widget.objects.using("pooled").create(name=nonce).pk)
                mine[(nonce, "insert")] = ctx

        try:
            with bouncer("pooled", POOLED):
                start.wait()
                for unit in range(UNITS):
                    nonce = f"c{i}-u{unit}"
                    kind = rng.choice(["autocommit", "bare", "transaction", "mixed"])
                    if kind == "autocommit":
                        with audit_app.context(client=i, unit=unit):
                            write(nonce)
                    elif kind == "bare":  # no context at all: must stay without one
                        write(nonce)
                    elif kind == "transaction":
                        with audit_app.context(client=i, unit=unit), transaction.atomic("pooled"):
                            own_pids.add(backend_pid("pooled"))
                            for step in range(rng.randint(1, 3)):
                                with audit_app.context(step=step):
                                    time.sleep(rng.random() * 0.01)
                                    write(f"{nonce}-s{step}")
                    else:  # a context closes inside a transaction: later writes have none
                        with transaction.atomic("pooled"):
                            own_pids.add(backend_pid("pooled"))
                            with audit_app.context(client=i, unit=unit):
                                write(f"{nonce}-in")
                            time.sleep(rng.random() * 0.01)
                            write(f"{nonce}-out")
                with lock:
                    expected.update(mine)
                    pids[i] = own_pids
        except Exception as exc:
            with lock:
                errors.append((i, repr(exc)))
        finally:
            connections.close_all()  # the default alias, if this thread opened it

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors

    found = event_contexts()
    assert set(found) == set(expected)
    wrong = {key: (found[key], ctx) for key, ctx in expected.items() if found[key] != ctx}
    assert not wrong, wrong
    assert sum(ctx is None for ctx in expected.values()) > 0
    assert sum(ctx is not None for ctx in expected.values()) > CLIENTS * UNITS / 2

    # Pooling really happened: at most POOL_SIZE server backends served all clients,
    # and clients shared them.
    used = set().union(*pids.values())
    print(
        f"PgBouncer: {CLIENTS} clients on {len(used)} server connection(s), "
        f"{len(expected)} events checked, "
        f"{sum(ctx is None for ctx in expected.values())} of them written without context"
    )
    assert 1 <= len(used) <= POOL_SIZE
    assert any(sum(pid in p for p in pids.values()) >= 2 for pid in used)


def test_one_server_connection_alternating_clients(bouncer):
    """Two clients on one server connection, strictly alternating transactions."""
    with bouncer("single_a", SINGLE), bouncer("single_b", SINGLE):
        _alternate()


def _alternate():
    with audit_app.context(client="A"), transaction.atomic("single_a"):
        pid_a = backend_pid("single_a")
        obj = Widget.objects.using("single_a").create(name="a1")
    pid_b = backend_pid("single_b")
    Widget.objects.using("single_b").filter(pk=obj.pk).update(name="b1")
    with audit_app.context(client="A"):
        Widget.objects.using("single_a").filter(pk=obj.pk).update(name="a2")
    with audit_app.context(client="B"), transaction.atomic("single_b"):
        Widget.objects.using("single_b").filter(pk=obj.pk).update(name="b2")
    Widget.objects.using("single_a").filter(pk=obj.pk).update(name="a3")
    assert pid_a == pid_b == backend_pid("single_a")
    assert event_contexts() == {
        ("a1", "insert"): {"client": "A"},
        ("b1", "update"): None,
        ("a2", "update"): {"client": "A"},
        ("b2", "update"): {"client": "B"},
        ("a3", "update"): None,
    }


def test_a_session_level_setting_would_leak_to_the_next_client(bouncer):
    """The control experiment: the harness does see a leak when there is one. A
    session-level ``set_config(..., false)`` sticks to the server connection and reaches
    the next client's transaction; audit_app only ever sets transaction-local values."""
    with bouncer("single_a", SINGLE), bouncer("single_b", SINGLE):
        _leak()


def _leak():
    with connections["single_a"].cursor() as cursor:
        cursor.execute("SELECT set_config('audit.context', '{\"client\": \"leaky\"}', false)")
    try:
        obj = Widget.objects.using("single_b").create(name="victim")
        with audit_app.context(client="B"):
            Widget.objects.using("single_b").filter(pk=obj.pk).update(name="protected")
    finally:
        with connections["single_a"].cursor() as cursor:
            cursor.execute("RESET audit.context")
    assert event_contexts() == {
        ("victim", "insert"): {"client": "leaky"},
        ("protected", "update"): {"client": "B"},
    }
