"""Settings of the read-path benchmark (``bench/reads.py``); not used by the tests.

The example shop's settings plus ``tests.trackapp`` (more tracked models). The
database is a private, durable PostgreSQL server started by
``config.embedded_db.database_settings("bench")`` (fsync and synchronous_commit on),
unless ``DATABASE_URL`` points at another server (the export child processes of the
benchmark use that to reach the parent's server). On the private server a few
settings are changed: see ``SERVER_SETTINGS``.
"""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "example_project"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# The example settings start a server for AUDIT_DB_PURPOSE when they are imported:
# make that the benchmark's throw-away server, never the demo's data folder.
os.environ["AUDIT_DB_PURPOSE"] = "bench"

from config import embedded_db  # noqa: E402
from config.settings import *  # noqa: E402, F403
from config.settings import INSTALLED_APPS as _EXAMPLE_APPS  # noqa: E402

INSTALLED_APPS = [*_EXAMPLE_APPS, "tests.trackapp"]
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Changed on the private server only (ALTER SYSTEM + restart); everything else keeps
# PostgreSQL's defaults: fsync, synchronous_commit, full_page_writes, autovacuum on,
# work_mem 4MB, jit on. The benchmark runs VACUUM ANALYZE itself after seeding.
SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "maintenance_work_mem": "1GB",
}


def _tuned_private_server() -> dict:
    settings = embedded_db.database_settings("bench")
    server = embedded_db._servers.get("bench")
    if server is None:  # DATABASE_URL: use that server as it is configured
        return settings
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    server.psql("".join(f"ALTER SYSTEM SET {k} = '{v}';" for k, v in SERVER_SETTINGS.items()))
    # shared_buffers needs a restart; pg_ctl reuses the socket options of the last start.
    pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)
    # Point pgserver's handle at the new postmaster so that it stops it (and deletes the
    # throw-away data folder) when the benchmark exits.
    server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)
    return settings


DATABASES = {
    "default": (
        embedded_db.database_settings("bench")
        if os.environ.get("DATABASE_URL")
        else _tuned_private_server()
    )
}
