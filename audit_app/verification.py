"""``audit verify``: recompute everything that was sealed and report every difference.

The chain first (each record's hash, its link to the previous one, its authenticator,
and the heads kept outside the database), then every sealed row of every event table
against its stored digest, in one REPEATABLE READ snapshot. Rows are checked a chunk
at a time (one query each, a few hundred KiB in memory), by ``jobs`` connections that
share the snapshot (``pg_export_snapshot``).
"""

from __future__ import annotations

import datetime
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.db import connections, models, transaction
from django.utils import timezone

from audit_app import chain, seal_keys, sql
from audit_app import sealing_sql as ssql
from audit_app.exceptions import SealKeyError
from audit_app.findings import CHAIN_BROKEN, HEAD_MISMATCH, RECORD_EDITED, Finding, Report
from audit_app.heads import Head
from audit_app.models import IntegrityRun, Seal, SealChunk
from audit_app.sealed_rows import ChunkResult, TableCheck
from audit_app.sealing import begin_snapshot, event_tables, record_fields, require_own_transaction

Progress = Callable[[int, int], None]


# -- the chain -------------------------------------------------------------------------------


def _wrong_key(records: list[Seal], ring: seal_keys.Keyring) -> SealKeyError:
    named = sorted({f"{r.method}:{r.key_id}" for r in records})
    return SealKeyError(
        f"No seal record ({len(records)} in all) was authenticated by the configured key(s) "
        f"({', '.join(ring.key_ids)}); they name {', '.join(named[:3])}. Either the key "
        "setting (AUDIT_SEAL_KEY, AUDIT_SEAL_PUBLIC_KEY_FILE) is not the one that sealed this "
        "history (set it), or the whole chain was rewritten without the key (heads kept "
        "outside the database tell: audit verify --heads FILE)."
    )


def check_chain(records: list[Seal], ring: seal_keys.Keyring) -> list[Finding]:
    """Findings about the records themselves: numbering, links, hashes, authenticators.

    SealKeyError when no record names a configured key (a wrong key, most likely).
    """
    if records and not any(ring.knows(r.method, r.key_id) for r in records):
        raise _wrong_key(records, ring)
    findings = []
    expected_seq, previous = 1, chain.GENESIS
    for record in records:
        where = f"seal record {record.seq} ({record.kind} of {record.table_name})"
        if record.seq != expected_seq:
            missing = (
                f"seal record {expected_seq} is"
                if record.seq == expected_seq + 1
                else f"seal records {expected_seq}-{record.seq - 1} are"
            )
            findings.append(Finding(CHAIN_BROKEN, f"{missing} missing (deleted)", seq=record.seq))
        elif bytes(record.prev_hash) != previous:
            findings.append(
                Finding(CHAIN_BROKEN, f"{where} no longer follows the record before it",
                        table=record.table_name, seq=record.seq)
            )  # fmt: skip
        why = _record_problem(record, ring)
        if why:
            findings.append(
                Finding(RECORD_EDITED, f"{where}: {why}", record.table_name, record.seq)
            )
        expected_seq, previous = record.seq + 1, bytes(record.hash)
    return findings


def _record_problem(record: Seal, ring: seal_keys.Keyring) -> str:
    if chain.record_hash(record_fields(record)) != bytes(record.hash):
        return "its content was changed after it was sealed (its hash no longer matches)"
    if not ring.knows(record.method, record.key_id):
        return (
            f"it names the key {record.method}:{record.key_id}, which is not configured "
            "(written with another key, or edited)"
        )
    if not ring.check(record.method, record.key_id, bytes(record.hash), record.authenticator):
        return "its authenticator does not match (written or rewritten without the key)"
    return ""


def check_heads(
    records: list[Seal], heads: Sequence[Head], ring: seal_keys.Keyring
) -> list[Finding]:
    """Findings where the chain differs from heads kept outside the database.

    SealKeyError when a head is not authenticated by a configured key: the heads
    file is then not evidence of anything.
    """
    by_seq = {r.seq: r for r in records}
    newest = max(by_seq, default=0)
    findings = []
    for head in heads:
        if not ring.check(head.method, head.key_id, head.hash, head.authenticator):
            raise SealKeyError(
                f"Line {head.line} of the heads file (record {head.seq}) is not authenticated "
                f"by the configured key(s) ({', '.join(ring.key_ids)}): check the key setting "
                "and that the file holds heads of this database."
            )
        record = by_seq.get(head.seq)
        if record is None:
            what = (
                f"the chain ends at record {newest}: records were removed from its end"
                if head.seq > newest
                else "that record is missing"
            )
            findings.append(
                Finding(HEAD_MISMATCH, f"head of record {head.seq}: {what}", seq=head.seq)
            )
        elif bytes(record.hash) != head.hash:
            findings.append(
                Finding(
                    HEAD_MISMATCH,
                    f"head of record {head.seq} (emitted {head.at or 'earlier'}) does not match "
                    "the chain: the chain was rewritten after the head was kept",
                    record.table_name,
                    head.seq,
                )
            )
    return findings


# -- rows, possibly on several connections -----------------------------------------------------

Task = tuple[TableCheck, Seal, SealChunk]


def _chunks(using: str, records: list[Seal]) -> Iterator[tuple[Seal, SealChunk]]:
    for record in records:
        chunks = SealChunk.objects.using(using).filter(seal_id=record.seq).order_by("position")
        for chunk in chunks.iterator(chunk_size=16):
            yield record, chunk


class _Pool:
    """``jobs`` threads, each with its own connection in the exported snapshot."""

    def __init__(self, jobs: int, using: str, snapshot: str) -> None:
        self.tasks: queue.Queue[Task | None] = queue.Queue(maxsize=2 * jobs)
        self.results: queue.Queue[tuple[TableCheck, ChunkResult] | BaseException] = queue.Queue()
        self.threads = [
            threading.Thread(target=self._work, args=(using, snapshot), daemon=True)
            for _ in range(jobs)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self, using: str, snapshot: str) -> None:
        try:
            self._serve(using, snapshot)
        except BaseException as exc:  # handed to the main thread, which raises it
            self.results.put(exc)
            while self.tasks.get() is not None:  # keep the queue moving until close()
                pass
        finally:
            connections[using].close()

    def _serve(self, using: str, snapshot: str) -> None:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute(f"SET TRANSACTION SNAPSHOT {sql.literal(snapshot)}")
            for statement in ssql.session_settings_sql():
                cursor.execute(statement)
            while (task := self.tasks.get()) is not None:
                check, record, chunk = task
                self.results.put((check, check.check_chunk(cursor, record, chunk)))

    def close(self) -> None:
        """Let the threads finish what was handed to them, and end."""
        for _ in self.threads:
            self.tasks.put(None)
        for thread in self.threads:
            thread.join()


def _check_rows(
    cursor: Any, checks: list[TableCheck], scope: dict[str, list[Seal]], jobs: int,
    progress: Progress,
) -> list[Finding]:  # fmt: skip
    """Check every chunk of the records in ``scope``; return findings about storage."""
    using = cursor.db.alias
    total = sum(r.row_count for records in scope.values() for r in records)
    done = [0]
    findings: list[Finding] = []

    def take(check: TableCheck, result: ChunkResult) -> None:
        check.add(result)
        done[0] += result.events
        progress(done[0], total)

    pool = None
    if jobs > 1:
        cursor.execute("SELECT pg_export_snapshot()")
        pool = _Pool(jobs, using, cursor.fetchone()[0])
    try:
        for check in checks:
            findings += _check_table_rows(cursor, check, scope.get(check.table, []), pool, take)
    finally:
        if pool:
            pool.close()
    if pool:
        while not pool.results.empty():
            _take_result(pool.results.get(), take)
    return findings


def _take_result(item: Any, take: Callable[[TableCheck, ChunkResult], None]) -> None:
    if isinstance(item, BaseException):
        raise item
    take(*item)


def _check_table_rows(
    cursor: Any, check: TableCheck, records: list[Seal], pool: _Pool | None,
    take: Callable[[TableCheck, ChunkResult], None],
) -> list[Finding]:  # fmt: skip
    findings = []
    hashes: dict[int, list[bytes]] = {r.seq: [] for r in records}
    for record, chunk in _chunks(cursor.db.alias, records):
        hashes[record.seq].append(chain.chunk_hash(chunk.ids, bytes(chunk.rows)))
        if check.encoding is None:
            continue
        if pool is None:
            take(check, check.check_chunk(cursor, record, chunk))
            continue
        pool.tasks.put((check, record, chunk))
        while not pool.results.empty():
            _take_result(pool.results.get(), take)
    for record in records:
        if chain.root_of(hashes[record.seq]) != bytes(record.root):
            findings.append(
                Finding(
                    RECORD_EDITED,
                    f"seal record {record.seq} ({record.table_name}): its stored digests no longer "
                    "match its root (digest chunks were changed or removed)",
                    record.table_name,
                    record.seq,
                )
            )
    return findings


# -- a verification ----------------------------------------------------------------------------


def _table_checks(
    using: str, records: list[Seal], models_: Sequence[type[models.Model]] | None
) -> list[TableCheck]:
    tables = event_tables(models_)
    labels = {table: label for label, table in tables}
    if models_ is None:  # tables no longer tracked still hold sealed history
        for record in records:
            labels.setdefault(record.table_name, record.table_name)
    checks = []
    for table, label in labels.items():
        mine = [r for r in records if r.table_name == table]
        seals = [r for r in mine if r.kind == Seal.SEAL]
        prunes = [r for r in mine if r.kind == Seal.PRUNE]
        checks.append(TableCheck(label, table, seals, prunes))
    return checks


def verify(
    models_: Sequence[type[models.Model]] | None = None,
    *,
    heads: Sequence[Head] | None = None,
    since: datetime.datetime | None = None,
    using: str = "default",
    jobs: int = 1,
    progress: Progress = lambda done, total: None,
) -> Report:
    """Recompute the chain and every sealed row; return the findings.

    ``since`` limits the row checks to records sealed since then (the chain and the
    heads are always checked whole). Raises SealKeyError without a key or with one
    that authenticated nothing here; nothing is written then.
    """
    ring = seal_keys.keyring()
    require_own_transaction(using, "audit verify")
    report = Report(started_at=timezone.now())
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        begin_snapshot(cursor)
        records = list(Seal.objects.using(using).order_by("seq"))
        report.records = len(records)
        report.findings += check_chain(records, ring)
        if heads is not None:
            report.heads = len(heads)
            report.findings += check_heads(records, heads, ring)
        checks = _table_checks(using, records, models_)
        for check in checks:
            check.read_columns(cursor)
        scope = {
            check.table: [r for r in check.records if since is None or r.created_at >= since]
            for check in checks
        }
        report.findings += _check_rows(cursor, checks, scope, max(1, jobs), progress)
        for check in checks:
            found, pruned = check.finish(cursor)
            report.findings += found
            report.pruned += pruned
            report.events += check.events
            report.pending += check.pending(cursor)
            unsealed, exact = check.unsealed(using)
            report.unsealed += unsealed
            report.unsealed_exact = report.unsealed_exact and exact
    report.finished_at = timezone.now()
    IntegrityRun.objects.using(using).create(
        kind=IntegrityRun.VERIFY,
        started_at=report.started_at,
        finished_at=report.finished_at,
        ok=report.ok,
        findings=len(report.findings),
        events=report.events,
        summary=[str(f) for f in report.findings[:100]] + report.notes(),
    )
    return report
