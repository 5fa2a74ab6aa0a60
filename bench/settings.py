"""Settings of the benchmark project (``bench/tracking.py``); not used by the tests.

The database is a private, durable PostgreSQL server started by
``config.embedded_db.database_settings("bench")`` (fsync and synchronous_commit on),
unless ``DATABASE_URL`` points at another server. On the private server a few
settings are changed: see ``SERVER_SETTINGS``.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "example_project"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from config import embedded_db  # noqa: E402

SECRET_KEY = "bench-not-secret"  # noqa: S105
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "pgtrigger",
    "audit_app",
    "bench.benchapp",
]

# Changed on the private server only (ALTER SYSTEM + restart); everything else keeps
# PostgreSQL's defaults: fsync, synchronous_commit, full_page_writes on, work_mem 4MB.
# autovacuum is off because the benchmark runs VACUUM ANALYZE itself, untimed,
# before every timed statement.
SERVER_SETTINGS = {"shared_buffers": "512MB", "max_wal_size": "4GB", "autovacuum": "off"}


DATABASES = {"default": embedded_db.tuned_database_settings("bench", SERVER_SETTINGS)}
