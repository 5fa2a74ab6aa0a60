"""Start a private PostgreSQL server for the demo, the tests and the benchmarks.

With ``DATABASE_URL`` set, that server is used and nothing is started. Otherwise the
``pgserver`` package (PostgreSQL binaries shipped through pip) runs a server on a
Unix socket inside a data folder: no system install, no root, no Docker. It runs as
an unprivileged system user when started by root, which PostgreSQL requires.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

REPO_ROOT = Path(__file__).resolve().parents[2]

# Settings that make a throw-away server fast; never used for the demo or benchmarks,
# whose numbers must reflect a durable server.
_FAST_UNSAFE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

_servers: dict[str, object] = {}


def _start(data_dir: Path, *, throwaway: bool):
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
        warnings.simplefilter("ignore")
        import pgserver

        return pgserver.get_server(data_dir, cleanup_mode="delete" if throwaway else "stop")


def database_settings(purpose: str = "demo") -> dict:
    """Return a Django ``DATABASES['default']`` dict for ``purpose`` (demo, test or bench)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        return dj_database_url.parse(url, conn_max_age=0)

    if purpose not in _servers:
        throwaway = purpose != "demo"
        if throwaway:
            data_dir = Path(tempfile.mkdtemp(prefix=f"audit-{purpose}-pg-"))
            # pgserver runs postgres as its own system user when we are root.
            data_dir.chmod(0o777)
        else:
            data_dir = Path(os.environ.get("AUDIT_DEMO_PGDATA", REPO_ROOT / ".pgdata" / "demo"))
            data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = _start(data_dir, throwaway=throwaway)
        if purpose == "test":
            server.psql(
                "".join(f"ALTER SYSTEM SET {k} = '{v}';" for k, v in _FAST_UNSAFE.items())
                + "SELECT pg_reload_conf();"
            )
        _servers[purpose] = server
    return _parse(_servers[purpose].get_uri())


def _parse(uri: str) -> dict:
    parsed = urlparse(uri)
    query = parse_qs(parsed.query)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")) or "postgres",
        "USER": unquote(parsed.username or "postgres"),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": query.get("host", [parsed.hostname or ""])[0],
        "PORT": str(parsed.port or ""),
    }


def remove_demo_data() -> None:
    """Delete the demo server's data folder (used by ``make clean``)."""
    shutil.rmtree(REPO_ROOT / ".pgdata", ignore_errors=True)


def tuned_database_settings(purpose: str, server_settings: dict[str, str]) -> dict:
    """Like ``database_settings``, with ``server_settings`` applied to the private server.

    Used by the benchmarks: ALTER SYSTEM, then a restart (shared_buffers needs one). With
    ``DATABASE_URL`` the server is used as it is configured and nothing is changed.
    """
    import signal
    import sys

    settings = database_settings(purpose)
    server = _servers.get(purpose)
    if server is None:
        return settings
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    server.psql("".join(f"ALTER SYSTEM SET {k} = '{v}';" for k, v in server_settings.items()))
    # pg_ctl reuses the socket options of the last start.
    pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)
    # Point pgserver's handle at the new postmaster so that it stops it (and deletes the
    # throw-away data folder) at exit; SIGTERM (kill, timeout) would skip atexit hooks.
    server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return settings
