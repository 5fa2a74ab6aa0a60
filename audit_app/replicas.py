"""Where history is read: a streaming replica, or the primary.

``AUDIT_READ_DATABASE`` names the alias that ``AuditEvent`` queries without ``.using()``
read; the event browser and the exports follow it. A replica trails the primary, so
what decides a write (revert and restore previews, conflict checks) and an object's
own history read the primary, inside ``primary_reads()``: a person who just saved sees
the change, and a revert is checked against the history as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, router, transaction

from audit_app import conf

# SizeOfXLogLongPHD: the header of a WAL segment's first page (other pages: 24 bytes).
_LONG_PAGE_HEADER = 40
# A ContextVar, not a thread-local: the pin follows async code too.
_primary_pinned: ContextVar[bool] = ContextVar("audit_app_primary_reads", default=False)


@contextmanager
def primary_reads() -> Iterator[None]:
    """Read history from the primary inside this block, whatever ``AUDIT_READ_DATABASE``
    says (also a decorator). An explicit ``.using()`` still wins."""
    token = _primary_pinned.set(True)
    try:
        yield
    finally:
        _primary_pinned.reset(token)


def primary_database(model: Any) -> str:
    """The alias ``model`` is written to (Django's routers): its history is written there."""
    return router.db_for_write(model)


def history_database(model: Any) -> str:
    """The alias a read of ``model``'s history without ``.using()`` goes to now."""
    if _primary_pinned.get():
        return primary_database(model)
    return conf.read_database()


@dataclass(frozen=True)
class ReplicaLag:
    """How far a read database trails the primary, as far as it could be measured."""

    alias: str
    #: Whether the alias is a standby in recovery (False: a lag cannot be measured).
    is_standby: bool
    #: WAL the primary wrote that the standby has not replayed yet (None: unknown).
    bytes_behind: int | None
    #: Age of the newest replayed commit while WAL is waiting (0: caught up; None: unknown).
    seconds_behind: float | None

    @property
    def caught_up(self) -> bool:
        return self.bytes_behind == 0


def _fetch(alias: str, statement: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    # Lag is a courtesy on a page: a server that refuses a function (a role without
    # the right, a server that is no standby) must not fail the page, nor the
    # transaction the page may run in (hence the savepoint of atomic()).
    try:
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchone()
    except DatabaseError:
        return None


def _gap(standby_lsn: str, primary: str) -> int | None:
    # The insert position, not the write position (pg_current_wal_lsn): with
    # synchronous_commit off, a commit is visible on the primary before it is written.
    found = _fetch(
        primary,
        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)::bigint, "
        "mod(pg_wal_lsn_diff(%s::pg_lsn, '0/0'), current_setting('wal_block_size')::numeric)",
        (standby_lsn, standby_lsn),
    )
    if found is None or found[0] is None:
        return None
    gap, into_page = int(found[0]), found[1]
    # A record that ends a WAL page leaves the insert position after the next page's
    # header (24 or 40 bytes): that is no WAL waiting to be replayed.
    if into_page == 0 and 0 < gap <= _LONG_PAGE_HEADER:
        return 0
    return max(gap, 0)


def replica_lag(alias: str | None = None, primary: str = DEFAULT_DB_ALIAS) -> ReplicaLag | None:
    """Measure how far ``alias`` (default ``AUDIT_READ_DATABASE``) trails ``primary``;
    None when it is the primary itself.

    Two queries: the standby's replayed WAL position and newest replayed commit time,
    then the primary's WAL position (read second, so the gap is never understated).
    The time is only a lag while WAL waits: an idle primary sends nothing to replay.
    """
    alias = conf.read_database() if alias is None else alias
    if alias == primary:
        return None
    standby = _fetch(
        alias,
        "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
        "EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8",
    )
    if standby is None or not standby[0] or standby[1] is None:
        return ReplicaLag(alias, False, None, None)
    behind = _gap(standby[1], primary)
    if behind is None:
        return ReplicaLag(alias, True, None, None)
    seconds = 0.0 if behind == 0 else (None if standby[2] is None else max(standby[2], 0.0))
    return ReplicaLag(alias, True, behind, seconds)
