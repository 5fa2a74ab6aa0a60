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


DATABASES = {"default": embedded_db.tuned_database_settings("bench", SERVER_SETTINGS)}

# bench/reads_partitioned.py declares every event table partitioned by month
# (AUDIT_PARTITION) before Django loads the models; bench/reads.py leaves them plain.
AUDIT_PARTITION = os.environ.get("BENCH_READS_PARTITION") or None
