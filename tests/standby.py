"""A hot standby of the embedded test server, streaming from it, for the replica tests.

``start()`` copies the running test server with ``pg_basebackup -R`` (which writes the
standby's connection back to it) and starts a second postmaster on the copy, with its
own socket folder: it replays everything the test server writes, test databases
included, and serves read-only queries like a production replica. ``stop()`` stops it
and deletes its folder. Only the embedded server (``config.embedded_db``) can be copied
this way; with ``DATABASE_URL`` there is nothing to start.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connections

#: The alias the replica tests read through.
ALIAS = "replica"
# A standby answers queries while it replays; a replayed TRUNCATE waits at most this
# long for a reading query to finish (then cancels it), so test teardown never hangs.
_STANDBY_SETTINGS = {
    "hot_standby": "on",
    "max_standby_streaming_delay": "1s",
    "shared_buffers": "16MB",
}


def unavailable_reason() -> str | None:
    """Why no standby can be started here (None: it can)."""
    if os.environ.get("DATABASE_URL"):
        return (
            "DATABASE_URL points at an external server: the replica tests start a streaming "
            "standby of the embedded test server only"
        )
    return None


def _embedded_server() -> Any:
    from config import embedded_db

    server = embedded_db._servers.get("test")
    if server is None:
        raise RuntimeError("The embedded test server is not running; see tests/settings.py.")
    return server


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run(args: list[str], user: str | None, timeout: int = 60) -> None:
    import subprocess

    result = subprocess.run(args, user=user, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def _allow_replication(cursor: Any) -> None:
    """Make sure the primary lets a local standby connect; only the access rules can be
    changed without a restart (the test server's other users keep running)."""
    cursor.execute("SHOW wal_level")
    level = cursor.fetchone()[0]
    cursor.execute("SHOW max_wal_senders")
    senders = int(cursor.fetchone()[0])
    if level == "minimal" or senders < 1:
        raise RuntimeError(
            f"The test server runs with wal_level={level}, max_wal_senders={senders}; a "
            "standby needs wal_level=replica and a WAL sender (the embedded default)."
        )
    cursor.execute(
        "SELECT count(*) FROM pg_hba_file_rules WHERE type = 'local' "
        "AND 'replication' = ANY(database) AND error IS NULL"
    )
    if cursor.fetchone()[0]:
        return
    cursor.execute("SHOW hba_file")
    hba = Path(cursor.fetchone()[0])
    with hba.open("a") as rules:
        rules.write("\nlocal replication all trust\n")
    cursor.execute("SELECT pg_reload_conf()")


@dataclass
class Standby:
    """A running standby: its folder, socket folder and port, and the user it runs as."""

    root: Path
    system_user: str | None
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def database_settings(self, primary: dict[str, Any]) -> dict[str, Any]:
        """``primary``'s settings pointed at the standby: same database name and role."""
        test = {**primary["TEST"], "MIRROR": "default"}
        return {**primary, "HOST": str(self.socket_dir), "PORT": str(self.port), "TEST": test}

    def stop(self) -> None:
        try:
            _run([_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                 self.system_user)  # fmt: skip
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start() -> Standby:
    """Copy the embedded test server and start the copy as a streaming hot standby."""
    server = _embedded_server()
    info = server.get_postmaster_info()
    with connections["default"].cursor() as cursor:
        _allow_replication(cursor)
    root = Path(tempfile.mkdtemp(prefix="audit-standby-"))
    # PostgreSQL runs as pgserver's own system user when we are root: it owns the copy.
    root.chmod(0o777)
    standby = Standby(root, server.system_user, info.port or 5432)
    standby.socket_dir.mkdir()
    standby.socket_dir.chmod(0o777)
    try:
        _run([_bin("pg_basebackup"), "-D", str(standby.data_dir), "-h", str(info.socket_dir),
              "-p", str(standby.port), "-U", "postgres", "-R", "-X", "stream", "-c", "fast",
              "--no-sync"], standby.system_user, timeout=120)  # fmt: skip
        options = " ".join(f"-c {k}={v}" for k, v in _STANDBY_SETTINGS.items())
        _run([_bin("pg_ctl"), "-D", str(standby.data_dir), "-w", "-t", "60",
              "-l", str(root / "standby.log"),
              "-o", f"-h '' -k {standby.socket_dir} -p {standby.port} {options}", "start"],
             standby.system_user, timeout=90)  # fmt: skip
    except Exception:
        log = root / "standby.log"
        detail = log.read_text() if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"The standby did not start.\n{detail}") from None
    return standby


def expose(server: Standby) -> None:
    """Add ``DATABASES["replica"]`` (and its connection) pointing at ``server``."""
    if ALIAS not in connections.settings:
        primary = connections["default"].settings_dict
        connections.settings[ALIAS] = server.database_settings(primary)


def hide() -> None:
    """Remove ``DATABASES["replica"]``: tests that do not ask for the standby never see it."""
    if ALIAS in connections.settings:
        connections[ALIAS].close()
        del connections[ALIAS]
        del connections.settings[ALIAS]


def wait_for_replay(alias: str = ALIAS, timeout: float = 15.0) -> None:
    """Wait until the standby behind ``alias`` has replayed everything the primary wrote
    so far (its insert position: commits not yet flushed count too)."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        target = cursor.fetchone()[0]
    deadline = time.monotonic() + timeout
    with connections[alias].cursor() as cursor:
        while True:
            # A record ending a page leaves the insert position after the next page's
            # header (up to 40 bytes) while the replayed position stays on the boundary.
            cursor.execute(
                "SELECT pg_wal_lsn_diff(%s::pg_lsn, lsn) <= CASE WHEN mod(pg_wal_lsn_diff(lsn, "
                "'0/0'), current_setting('wal_block_size')::numeric) = 0 THEN 40 ELSE 0 END "
                "FROM pg_last_wal_replay_lsn() AS lsn",
                [target],
            )
            if cursor.fetchone()[0]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"The standby did not replay up to {target} in {timeout}s.")
            time.sleep(0.02)


def pause_replay(alias: str = ALIAS) -> None:
    """Stop the standby applying WAL: it keeps receiving, and answers as of now."""
    # Takes effect before the next record is applied: nothing written after this
    # returns is replayed until ``resume_replay()``.
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_pause()")


def resume_replay(alias: str = ALIAS) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_resume()")
