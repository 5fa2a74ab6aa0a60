"""Deleting rows of an append-only table in batches, each past its protection trigger.

This is the one sanctioned way past append-only protection (``manage.py audit prune``).
Each batch is its own transaction. Inside it, the protection trigger is skipped with
``SET LOCAL session_replication_role = replica`` when the role may set it (a superuser,
or a grant of SET on it): no lock beyond the ``DELETE``'s own, so the table's writers
never wait. Otherwise the batch disables the trigger, which needs the table owner and
takes a lock that writers wait for until the batch commits: that lock is asked for with
a short ``lock_timeout`` (and asked again later when busy), and the batches shrink until
each holds it for about ``LOCKED_BATCH_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pgtrigger
from django.db import OperationalError, models, transaction

from audit_app import sql
from audit_app.partitioning import LOCK_ATTEMPTS, LOCK_TIMEOUT_MS
from audit_app.triggers import AppendOnly

# How long a batch that disabled the protection trigger may hold its lock: writers of
# the table wait that long at most (plus the lock wait, at most LOCK_TIMEOUT_MS).
LOCKED_BATCH_SECONDS = 0.05
_LOCKED_BATCH_FIRST = 500
_LOCKED_BATCH_LEAST = 50

# (cursor, table, deleted keys): called inside each batch's transaction.
Recorder = Callable[[Any, str, list[int]], None]


def protection(db_table: str) -> list[str]:
    """pgids of the append-only triggers on the table ``db_table``."""
    return [
        trigger.get_pgid(model)
        for model, trigger in pgtrigger.registered()
        if model._meta.db_table == db_table and isinstance(trigger, AppendOnly)
    ]


def protection_of(model: type[models.Model]) -> list[str]:
    return protection(model._meta.db_table)


def may_skip_triggers(cursor: Any) -> bool:
    """Whether the role may set ``session_replication_role`` (a superuser, or on
    PostgreSQL 15+ a role granted SET on it).

    Then a prune batch skips the protection trigger for its own transaction only;
    otherwise it disables the trigger, which locks out the table's writers for the
    batch. The application role of docs/security.md may do neither.
    """
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if cursor.fetchone()[0]:
        return True
    if cursor.db.pg_version < 150000:
        return False
    cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
    return bool(cursor.fetchone()[0])


def _lock_timed_out(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "55P03"


class BatchDeleter:
    """Runs one table's batches: ``statement(size)`` deletes the next ``size`` rows with
    a key above the one given by ``params(after)`` and returns their keys."""

    def __init__(self, cursor: Any, table: str, protected: Sequence[str]) -> None:
        self.cursor = cursor
        self.table = table
        self.protected = list(protected)
        self.skip = bool(protected) and may_skip_triggers(cursor)
        self.locking = bool(protected) and not self.skip
        self.waits = 0  # times the lock was busy and asked for again

    def _toggle(self, action: str) -> None:
        for pgid in self.protected:
            self.cursor.execute(
                f"ALTER TABLE {sql.quote(self.table)} {action} TRIGGER {sql.quote(pgid)}"
            )

    def _batch(self, statement: str, params: Any, record: Recorder | None) -> list[int]:
        cursor = self.cursor
        with transaction.atomic(using=cursor.db.alias):
            if self.skip:
                # No lock beyond the DELETE's own: writers of the table go on.
                cursor.execute("SET LOCAL session_replication_role = replica")
            if self.locking:
                # Writers queue behind a waiting lock request: give way quickly.
                cursor.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
                self._toggle("DISABLE")
                cursor.execute("SET LOCAL lock_timeout = DEFAULT")
            cursor.execute(statement, params)
            keys = [row[0] for row in cursor.fetchall()]
            if record:
                # Sealed history: the prune record is written in the deleting transaction.
                record(cursor, self.table, keys)
            if self.locking:
                self._toggle("ENABLE")
            if self.skip:
                # SET LOCAL would outlive a savepoint (prune inside a transaction).
                cursor.execute("SET LOCAL session_replication_role = origin")
        return keys

    def _batch_retrying(self, statement: str, params: Any, record: Recorder | None) -> list[int]:
        for attempt in range(LOCK_ATTEMPTS):
            try:
                return self._batch(statement, params, record)
            except OperationalError as exc:
                if not self.locking or not _lock_timed_out(exc) or attempt == LOCK_ATTEMPTS - 1:
                    raise
                self.waits += 1
                time.sleep(min(0.05 * (attempt + 1), 1.0))
        raise AssertionError("unreachable")

    def run(
        self,
        statement: Callable[[int], str],
        params: Callable[[int], Any],
        batch_size: int,
        record: Recorder | None = None,
    ) -> int:
        """Delete batch after batch until one comes back short; return the rows deleted."""
        size = min(batch_size, _LOCKED_BATCH_FIRST) if self.locking else batch_size
        total, after = 0, -(2**63)
        while True:
            started = time.monotonic()
            keys = self._batch_retrying(statement(size), params(after), record)
            total += len(keys)
            if len(keys) < size:
                return total
            after = max(keys)
            if self.locking:
                # Keep the time writers may wait near the target, whatever a row costs.
                held = max(time.monotonic() - started, 1e-3)
                scaled = int(size * LOCKED_BATCH_SECONDS / held)
                size = max(_LOCKED_BATCH_LEAST, min(batch_size, scaled, size * 2))
