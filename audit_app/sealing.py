"""``audit seal``: seal the events committed since the last seal into the chain.

Per event table, a seal appends one record to the one chain over all tables: the
ids it sealed (the new rows up to the newest visible id, plus rows of older ids that
were still being written at earlier seals), a root over their digests, the previous
record's hash and an authenticator. The digests themselves are stored in chunks
(``SealChunk``) that the root covers.

Sealing runs in one REPEATABLE READ transaction, so it sees one snapshot. Ids are
drawn when a row is written, not when it commits: an id below the newest visible one
may still belong to an open transaction. Those ids are recorded as *open gaps* with
the transactions that could still fill them (``sealing_sql.WRITERS_SQL``); a later
seal seals whatever rows appeared there, and closes a gap once every one of those
transactions has ended. A row that appears in a closed gap was inserted afterwards.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, models, transaction
from django.utils import timezone

from audit_app import chain, seal_keys, sql
from audit_app import sealing_sql as ssql
from audit_app.exceptions import SealError
from audit_app.models import IntegrityRun, Seal, SealChunk
from audit_app.registry import event_model_of, event_models

Log = Callable[[str], None]


def event_tables(models_: Sequence[type[models.Model]] | None = None) -> list[tuple[str, str]]:
    """(event model label, event table) of ``models_`` (tracked models), else of all."""
    chosen = event_models() if models_ is None else [event_model_of(m) for m in models_]
    return [(m._meta.label, m._meta.db_table) for m in chosen]


@contextlib.contextmanager
def chain_lock(using: str = "default", *, wait: bool) -> Iterator[None]:
    """Hold the lock of everything that appends to the chain, on ``using``'s session.

    Taken before a sealing transaction starts, so its snapshot sees the records of
    whoever held the lock before.
    """
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(ssql.CHAIN_LOCK_SQL if wait else ssql.TRY_CHAIN_LOCK_SQL)
        if not wait and not cursor.fetchone()[0]:
            raise SealError(
                "Another audit seal or audit prune is running on this database; "
                "run this one after it has finished."
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(ssql.CHAIN_UNLOCK_SQL)


def begin_snapshot(cursor: Any) -> None:
    """Make the current transaction REPEATABLE READ with the sealing session settings.

    Must be the first statement of the transaction.
    """
    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    for statement in ssql.session_settings_sql():
        cursor.execute(statement)


def writers(cursor: Any, tables: Sequence[str]) -> dict[str, list[str]]:
    """Per table, the transactions that hold a lock that writing rows needs."""
    cursor.execute(ssql.WRITERS_SQL, [[sql.quote(t) for t in tables]])
    by_quoted = {name: sorted(found) for name, found in cursor.fetchall()}
    return {t: by_quoted.get(sql.quote(t), []) for t in tables}


def tail(cursor: Any) -> tuple[int, bytes]:
    """(seq, hash) of the newest record of the chain ((0, GENESIS) when empty)."""
    cursor.execute(f"SELECT seq, hash FROM {sql.quote(ssql.SEAL_TABLE)} ORDER BY seq DESC LIMIT 1")
    row = cursor.fetchone()
    return (row[0], bytes(row[1])) if row else (0, chain.GENESIS)


def record_fields(seal: Seal) -> dict[str, Any]:
    """The hashed fields of a record, as stored."""
    return {
        "seq": seal.seq,
        "kind": seal.kind,
        "created_at": seal.created_at,
        "table": seal.table_name,
        "first_id": seal.first_id,
        "last_id": seal.last_id,
        "rows": seal.row_count,
        "details": seal.details,
        "root": bytes(seal.root),
        "prev": bytes(seal.prev_hash),
        "method": seal.method,
        "key_id": seal.key_id,
    }


def append(cursor: Any, signer: seal_keys.Signer, **fields: Any) -> Seal:
    """Append a record to the chain: link, hash and authenticate it, then store it."""
    seq, previous = tail(cursor)
    record = Seal(
        seq=seq + 1,
        created_at=timezone.now(),
        prev_hash=previous,
        method=signer.method,
        key_id=signer.key_id,
        **fields,
    )
    record.hash = chain.record_hash(record_fields(record))
    record.authenticator = signer.authenticate(record.hash)
    record.save(using=cursor.db.alias, force_insert=True)
    return record


# -- one table ---------------------------------------------------------------------------------


@dataclass
class TableEncoding:
    """A table's columns now, and the encoding new batches of it are sealed with."""

    table: str
    columns: list[ssql.Column]
    context_columns: list[ssql.Column]
    encoding: ssql.Encoding

    @classmethod
    def read(cls, cursor: Any, table: str) -> TableEncoding:
        """The table's columns now, and their keys sorted as a new batch encodes them."""
        columns = ssql.sealed_columns(cursor, table)
        context_columns = ssql.sealed_columns(cursor, sql.CONTEXT_TABLE)
        encoding = ssql.Encoding(
            tuple(sorted(c.key for c in columns)), tuple(sorted(c.key for c in context_columns))
        )
        return cls(table, columns, context_columns, encoding)

    def with_keys(self, keys: Sequence[str], context_keys: Sequence[str]) -> TableEncoding:
        """This table read with the keys of an earlier batch."""
        return TableEncoding(
            self.table,
            self.columns,
            self.context_columns,
            ssql.Encoding(tuple(keys), tuple(context_keys)),
        )

    def chunks(
        self, cursor: Any, where: str, params: list[Any]
    ) -> Iterator[tuple[list[int], bytes]]:
        """(ids, stored bytes) of the rows matching ``where``, CHUNK_ROWS at a time."""
        ref = f"t.{sql.quote(ssql.EVENT_ID)}"
        after = -(2**63)
        while True:
            statement = ssql.chunk_sql(
                self.table, self.encoding, self.columns, self.context_columns,
                f"{where} AND {ref} > %s",
            )  # fmt: skip
            cursor.execute(statement, [*params, after])
            ids, rows = cursor.fetchone()
            if not ids:
                return
            yield ids, bytes(rows)
            if len(ids) < ssql.CHUNK_ROWS:
                return
            after = ids[-1]


@dataclass
class TableState:
    """Where sealing of one table stands: its high-water mark and its open gaps."""

    high_water: int = 0
    open: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, table: str, using: str) -> TableState:
        """The state the table's newest seal record left."""
        newest = (
            Seal.objects.using(using)
            .filter(table_name=table, kind=Seal.SEAL)
            .order_by("-seq")
            .first()
        )
        if newest is None:
            return cls()
        return cls(newest.last_id, list(newest.details.get("open", [])))

    def next_open(self, late: chain.Runs, ended: Callable[[list[str]], bool]) -> list[dict]:
        """The open gaps after a seal that sealed ``late``: filled ids leave, and a gap
        whose writers have all ended is closed (nothing can fill it any more)."""
        still = []
        for entry in self.open:
            remaining = chain.subtract_runs(entry["runs"], late)
            if remaining and not ended(entry["writers"]):
                still.append({"runs": remaining, "writers": entry["writers"]})
        return still


@dataclass
class SealedTable:
    """What one seal did to one table."""

    label: str
    table: str
    rows: int = 0
    late: int = 0
    seq: int | None = None
    open_ids: int = 0


@dataclass
class _Batch:
    chunk_hashes: list[bytes] = field(default_factory=list)
    rows: int = 0

    def add(self, cursor: Any, seq: int, table: str, ids: list[int], rows: bytes) -> chain.Runs:
        """Store one chunk of the batch ``seq``; return its ids as runs."""
        runs = chain.runs_of(ids)
        SealChunk.objects.using(cursor.db.alias).create(
            seal_id=seq, position=len(self.chunk_hashes), table_name=table,
            first_id=ids[0], last_id=ids[-1], row_count=len(ids), ids=runs, rows=rows,
        )  # fmt: skip
        self.chunk_hashes.append(chain.chunk_hash(runs, rows))
        self.rows += len(ids)
        return runs


def _check_sequence(cursor: Any, table: str) -> None:
    cursor.execute(ssql.SEQUENCE_CACHE_SQL, [sql.quote(table), ssql.EVENT_ID])
    row = cursor.fetchone()
    if row and row[0] > 1:
        raise SealError(
            f"The id sequence {row[1]} of {table} caches {row[0]} values per session, so "
            "ids are not drawn in order across sessions and sealing could not tell late "
            f"rows from inserted ones. Run: ALTER SEQUENCE {row[1]} CACHE 1"
        )


def _high_water(cursor: Any, table: str, state: TableState) -> int:
    cursor.execute(f"SELECT max({sql.quote(ssql.EVENT_ID)}) FROM {sql.quote(table)}")
    return max(cursor.fetchone()[0] or 0, state.high_water)


def _seal_new(
    cursor: Any, encoding: TableEncoding, batch: _Batch, seq: int, low: int, high: int
) -> chain.Runs:
    """Seal the visible rows with ids in (low, high]; return the ids that were not there."""
    sealed: chain.Runs = []
    where, params = ssql.after_where(low, high)
    for ids, rows in encoding.chunks(cursor, where, params):
        sealed += batch.add(cursor, seq, encoding.table, ids, rows)
    return chain.gaps_between(low, high, sealed)


def _seal_late(
    cursor: Any, encoding: TableEncoding, batch: _Batch, seq: int, pending: chain.Runs
) -> chain.Runs:
    """Seal the rows that appeared in open gaps since; return their ids."""
    late: chain.Runs = []
    for start in range(0, len(pending), 500):
        where, params = ssql.runs_where(pending[start : start + 500])
        for ids, rows in encoding.chunks(cursor, where, params):
            late += batch.add(cursor, seq, encoding.table, ids, rows)
    return chain.merge_runs(late)


def seal_table(
    cursor: Any,
    label: str,
    table: str,
    signer: seal_keys.Signer,
    writers_before: list[str],
    writers_after: list[str],
) -> SealedTable:
    """Seal one table's new and late rows into one record (none when nothing changed).

    ``writers_before`` were writing before the snapshot was taken: an open gap is
    closed once none of its writers is among them. ``writers_after`` were writing
    when the snapshot had been taken: they may still fill this seal's own gaps.
    """
    encoding = TableEncoding.read(cursor, table)
    if not encoding.columns:
        raise SealError(f"The event table {table} of {label} does not exist; run migrate.")
    _check_sequence(cursor, table)
    state = TableState.read(table, cursor.db.alias)
    high = _high_water(cursor, table, state)
    seq, batch = tail(cursor)[0] + 1, _Batch()
    gaps = _seal_new(cursor, encoding, batch, seq, state.high_water, high)
    fresh = batch.rows
    pending = chain.merge_runs(*(entry["runs"] for entry in state.open))
    late = _seal_late(cursor, encoding, batch, seq, pending)
    still_open = state.next_open(late, ended=lambda found: not set(found) & set(writers_before))
    if gaps:
        still_open.append({"runs": gaps, "writers": writers_after})
    result = SealedTable(label, table, rows=fresh, late=batch.rows - fresh)
    result.open_ids = sum(chain.count_of(entry["runs"]) for entry in still_open)
    if not batch.rows and still_open == state.open:
        return result
    details = {
        "keys": list(encoding.encoding.keys),
        "context_keys": list(encoding.encoding.context_keys),
        "gaps": gaps,
        "late": late,
        "open": still_open,
        "chunks": len(batch.chunk_hashes),
    }
    record = append(
        cursor, signer, kind=Seal.SEAL, table_name=table, first_id=state.high_water + 1,
        last_id=high, row_count=batch.rows, details=details,
        root=chain.root_of(batch.chunk_hashes),
    )  # fmt: skip
    result.seq = record.seq
    return result


# -- a seal run -------------------------------------------------------------------------------


@dataclass
class SealRun:
    """What ``seal()`` did: per table, and the chain's newest record after it."""

    tables: list[SealedTable]
    head: Seal | None
    started_at: datetime.datetime
    finished_at: datetime.datetime

    @property
    def events(self) -> int:
        """Events sealed, new and late, over all tables."""
        return sum(t.rows + t.late for t in self.tables)


def require_own_transaction(using: str, what: str) -> None:
    """SealError unless ``using`` is outside any atomic block (``what`` names the caller)."""
    if connections[using].in_atomic_block:
        raise SealError(
            f"{what} needs a transaction of its own (one snapshot, REPEATABLE READ); "
            "call it outside transaction.atomic()."
        )


def _check_chain_end(cursor: Any) -> None:
    """Refuse to extend a chain whose newest record the configured keys do not accept."""
    newest = Seal.objects.using(cursor.db.alias).order_by("-seq").first()
    if newest is None:
        return
    ring = seal_keys.keyring()
    valid = chain.record_hash(record_fields(newest)) == bytes(newest.hash) and ring.check(
        newest.method, newest.key_id, bytes(newest.hash), bytes(newest.authenticator)
    )
    if not valid:
        raise SealError(
            f"The newest seal record ({newest.seq}, key {newest.method}:{newest.key_id}) is "
            f"not authenticated by the configured key(s) ({', '.join(ring.key_ids)}): either "
            "the key setting is wrong or the record was changed. Nothing was sealed; run "
            "manage.py audit verify to see which."
        )


def seal(
    models_: Sequence[type[models.Model]] | None = None,
    *,
    using: str = "default",
    log: Log = lambda message: None,
) -> SealRun:
    """Seal the events committed since the last seal, per event table, into the chain.

    ``models_`` limits it to these tracked models. Raises SealError (nothing written)
    without a key, inside a transaction, or while another seal or prune runs.
    """
    signer = seal_keys.signer()
    tables = event_tables(models_)
    require_own_transaction(using, "audit seal")
    started = timezone.now()
    names = [table for _, table in tables]
    with chain_lock(using, wait=False):
        with connections[using].cursor() as cursor:
            before = writers(cursor, names)
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            begin_snapshot(cursor)
            after = writers(cursor, names)
            _check_chain_end(cursor)
            results = []
            for label, table in tables:
                done = seal_table(cursor, label, table, signer, before[table], after[table])
                log(f"{label}: {done.rows} new and {done.late} late events sealed")
                results.append(done)
            run = SealRun(results, None, started, timezone.now())
            run.head = Seal.objects.using(using).order_by("-seq").first()
            IntegrityRun.objects.using(using).create(
                kind=IntegrityRun.SEAL, started_at=started, finished_at=run.finished_at,
                ok=True, events=run.events,
                summary=[f"{t.label}: {t.rows} new, {t.late} late" for t in results],
            )  # fmt: skip
    return run


# -- prune records ------------------------------------------------------------------------------


# A prune record's id runs stay a bounded JSON value: more runs take more records.
PRUNE_RECORD_RUNS = 10_000


class PruneRecorder:
    """Appends an authenticated prune record for each batch of events a prune deletes."""

    def __init__(self, signer: seal_keys.Signer, reason: str) -> None:
        self.signer = signer
        self.reason = reason

    def __call__(self, cursor: Any, table: str, ids: Sequence[int]) -> None:
        """Record that ``ids`` of ``table`` were pruned (in the deleting transaction)."""
        if ids:
            self.record_runs(cursor, table, chain.runs_of(sorted(ids)))

    def record_runs(self, cursor: Any, table: str, runs: chain.Runs) -> None:
        """Record that the ids of ``runs`` (sorted, distinct) of ``table`` were pruned,
        in records of at most ``PRUNE_RECORD_RUNS`` runs."""
        for start in range(0, len(runs), PRUNE_RECORD_RUNS):
            part = runs[start : start + PRUNE_RECORD_RUNS]
            append(
                cursor, self.signer, kind=Seal.PRUNE, table_name=table, first_id=part[0][0],
                last_id=part[-1][1], row_count=chain.count_of(part),
                details={"ids": part, "reason": self.reason}, root=chain.chunk_hash(part, b""),
            )  # fmt: skip


def sealing_in_use(using: str = "default") -> bool:
    """Whether the chain holds any record."""
    return Seal.objects.using(using).exists()


@contextlib.contextmanager
def prune_records(using: str, reason: str) -> Iterator[PruneRecorder | None]:
    """A recorder of prune records while sealed history exists and a key is set (None
    otherwise: pruning then leaves deletions that verify reports), holding the chain
    lock so that no seal runs meanwhile."""
    if not sealing_in_use(using) or not seal_keys.configured():
        yield None
        return
    signer = seal_keys.signer()
    with chain_lock(using, wait=True):
        yield PruneRecorder(signer, reason)
