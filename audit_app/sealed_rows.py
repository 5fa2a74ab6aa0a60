"""Sealed rows against the event table now: changed, deleted and inserted events.

``TableCheck`` holds one event table's seal and prune records. ``check_chunk``
recomputes the digests of one stored chunk's rows (one query) and compares them with
what was sealed; ``finish`` adds what only the whole table shows: deletions not
covered by a prune record, rows in sealed ranges that no seal holds, columns that
are gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audit_app import chain, sql
from audit_app import sealing_sql as ssql
from audit_app.counting import count_rows
from audit_app.findings import (
    CHAIN_BROKEN,
    CHANGED,
    COLUMN_MISSING,
    DELETED,
    INSERTED,
    TABLE_MISSING,
    Finding,
    events_text,
)
from audit_app.sealing import TableEncoding

#: Changed events reported one by one per table; beyond, a count.
MAX_LISTED = 1000
MIN_ID = -(2**63)
_FINGERPRINTS = slice(ssql.DIGEST_BYTES, None)


def compare_rows(
    stored_ids: chain.Runs, stored: bytes, found_ids: list[int], found: bytes, size: int
) -> tuple[list[int], list[tuple[int, list[int]]]]:
    """(sealed ids now missing, [(id, positions of fingerprints that differ)]) of a chunk.

    ``found_ids`` are the chunk's ids still in the table, in order. The equal case,
    by far the most common, costs one comparison of bytes.
    """
    if len(found_ids) == chain.count_of(stored_ids) and found == stored:
        return [], []
    where = {event_id: i for i, event_id in enumerate(found_ids)}
    missing, changed = [], []
    for i, event_id in enumerate(chain.ids_of(stored_ids)):
        j = where.get(event_id)
        if j is None:
            missing.append(event_id)
            continue
        old, new = stored[i * size : (i + 1) * size], found[j * size : (j + 1) * size]
        if old != new:
            old_f, new_f = old[_FINGERPRINTS], new[_FINGERPRINTS]
            differ = [k for k in range(0, len(old_f), 2) if old_f[k : k + 2] != new_f[k : k + 2]]
            changed.append((event_id, [k // 2 for k in differ]))
    return missing, changed


@dataclass
class ChunkResult:
    """The outcome of one chunk."""

    events: int
    missing: chain.Runs = field(default_factory=list)
    changed: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)


def _column_names(keys: list[str], positions: list[int], added: list[str]) -> tuple[str, ...]:
    names = [keys[p] if p < len(keys) else ssql.CONTEXT_KEY for p in positions if p <= len(keys)]
    return tuple(names + added)


class TableCheck:
    """The sealed history of one event table, checked against the table."""

    def __init__(self, label: str, table: str, records: list[Any], prunes: list[Any]) -> None:
        self.label = label
        self.table = table
        self.records = records  # its seal records, oldest first
        self.pruned = chain.RunSet(chain.merge_runs(*(p.details.get("ids", []) for p in prunes)))
        self.encoding: TableEncoding | None = None
        self.events = 0
        self.missing: chain.Runs = []
        self.changed: list[tuple[int, tuple[str, ...]]] = []
        self.changed_count = 0

    def read_columns(self, cursor: Any) -> None:
        """Read the table's columns now (None when the table is gone)."""
        encoding = TableEncoding.read(cursor, self.table)
        self.encoding = encoding if encoding.columns else None

    def check_chunk(self, cursor: Any, record: Any, chunk: Any) -> ChunkResult:
        """Digest the chunk's rows as they are now and compare (thread-safe: ``cursor``
        is the calling thread's)."""
        keys = record.details["keys"]
        encoding = self.encoding.with_keys(keys, record.details["context_keys"])
        where, params = ssql.runs_where(chunk.ids)
        cursor.execute(
            ssql.chunk_sql(
                self.table, encoding.encoding, encoding.columns, encoding.context_columns, where
            ),
            params,
        )
        found_ids, found = cursor.fetchone()
        missing, changed = compare_rows(
            chunk.ids, bytes(chunk.rows), found_ids or [], bytes(found or b""), ssql.row_size(keys)
        )
        result = ChunkResult(chunk.row_count, chain.runs_of(missing))
        unnamed = [event_id for event_id, positions in changed if not positions]
        added = self._added_values(cursor, keys, encoding.columns, unnamed)
        for event_id, positions in changed:
            result.changed.append(
                (event_id, _column_names(keys, positions, added.get(event_id, [])))
            )
        return result

    def _added_values(
        self, cursor: Any, keys: list[str], columns: list[ssql.Column], ids: list[int]
    ) -> dict[int, list[str]]:
        """Per id, the keys of columns added since sealing that hold a value."""
        statement = ssql.added_columns_sql(self.table, keys, columns)
        if not ids or statement is None:
            return {}
        cursor.execute(statement, [ids])
        return {event_id: list(names) for event_id, names in cursor.fetchall()}

    def add(self, result: ChunkResult) -> None:
        """Count in one chunk's outcome (the caller's thread only)."""
        self.events += result.events
        self.missing += result.missing
        self.changed_count += len(result.changed)
        room = MAX_LISTED - len(self.changed)
        self.changed += result.changed[: max(room, 0)]

    # -- what the whole table shows ---------------------------------------------------------

    def finish(self, cursor: Any) -> tuple[list[Finding], int]:
        """Findings of the table, and how many sealed events were pruned."""
        if self.encoding is None:
            return self._gone(), 0
        findings = self._missing_columns()
        missing = chain.merge_runs(self.missing)
        deleted = chain.subtract_runs(missing, self.pruned.runs)
        pruned = chain.count_of(missing) - chain.count_of(deleted)
        if deleted:
            findings.append(
                Finding(
                    DELETED,
                    f"{self.table}: {events_text(chain.count_of(deleted))} deleted "
                    f"(ids {chain.runs_text(deleted)})",
                    table=self.table,
                    ids=tuple(map(tuple, deleted)),
                )
            )
        findings += self._changed_findings()
        findings += self._inserted(cursor)
        return findings, pruned

    def _changed_findings(self) -> list[Finding]:
        findings = []
        for event_id, columns in sorted(self.changed):
            if columns == (ssql.CONTEXT_KEY,):
                what = "its context row changed (who, from where, why)"
            elif columns:
                what = f"columns {', '.join(columns)}"
            else:
                what = "columns not identified"
            findings.append(
                Finding(
                    CHANGED,
                    f"{self.table}: event {event_id} changed ({what})",
                    table=self.table,
                    ids=((event_id, event_id),),
                    columns=columns,
                )
            )
        if self.changed_count > len(self.changed):
            rest = self.changed_count - len(self.changed)
            findings.append(
                Finding(CHANGED, f"{self.table}: {events_text(rest)} more changed", self.table)
            )
        return findings

    def _missing_columns(self) -> list[Finding]:
        assert self.encoding is not None
        now = {c.key for c in self.encoding.columns}
        sealed = {key for record in self.records for key in record.details["keys"]}
        return [
            Finding(
                COLUMN_MISSING,
                f"{self.table}: the column sealed under the key {key!r} is gone (dropped, or "
                f"renamed without the comment 'audit:key={key}')",
                table=self.table,
                columns=(key,),
            )
            for key in sorted(sealed - now)
        ]

    def _gone(self) -> list[Finding]:
        high = max((r.last_id for r in self.records), default=0)
        pruned = chain.count_of(chain.subtract_runs(self.pruned.runs, [[high + 1, 2**63 - 1]]))
        count = sum(r.row_count for r in self.records) - pruned
        if count <= 0:
            return []  # everything sealed was pruned before the table went
        return [
            Finding(
                TABLE_MISSING,
                f"{self.table}: the event table is gone, and with it {events_text(count)} "
                f"sealed in {len(self.records)} seal records",
                table=self.table,
            )
        ]

    def _inserted(self, cursor: Any) -> list[Finding]:
        """Rows where no seal put one: in a sealed range's gaps (not filled by a later seal,
        not still open) or below every range (inserted); between records (uncovered)."""
        if not self.records:
            return []
        late = chain.merge_runs(*(r.details.get("late", []) for r in self.records))
        gaps = chain.merge_runs(*(r.details.get("gaps", []) for r in self.records), [[MIN_ID, 0]])
        holes = [[1, self.records[0].first_id - 1]]
        for previous, record in zip(self.records, self.records[1:], strict=False):
            holes.append([previous.last_id + 1, record.first_id - 1])
        holes = [hole for hole in holes if hole[0] <= hole[1]]
        pending = chain.RunSet(self.open_runs())
        inserted = [
            i for i in self._ids_in(cursor, chain.subtract_runs(gaps, late)) if i not in pending
        ]
        uncovered = self._ids_in(cursor, chain.subtract_runs(holes, late))
        findings = []
        if inserted:
            runs = chain.runs_of(inserted)
            findings.append(
                Finding(
                    INSERTED,
                    f"{self.table}: {events_text(len(inserted))} inserted into sealed ranges "
                    f"(ids {chain.runs_text(runs)})",
                    table=self.table,
                    ids=tuple(map(tuple, runs)),
                )
            )
        if uncovered:
            runs = chain.runs_of(uncovered)
            findings.append(
                Finding(
                    CHAIN_BROKEN,
                    f"{self.table}: {events_text(len(uncovered))} in ids no seal record covers "
                    f"(ids {chain.runs_text(runs)}): the record that sealed them is missing",
                    table=self.table,
                    ids=tuple(map(tuple, runs)),
                )
            )
        return findings

    def open_runs(self) -> chain.Runs:
        """Ids the newest seal left open (transactions still writing then)."""
        newest = self.records[-1] if self.records else None
        if newest is None:
            return []
        return chain.merge_runs(*(entry["runs"] for entry in newest.details.get("open", [])))

    def _ids_in(self, cursor: Any, runs: chain.Runs) -> list[int]:
        found: list[int] = []
        for start in range(0, len(runs), 500):
            where, params = ssql.runs_where(runs[start : start + 500])
            cursor.execute(
                f"SELECT t.{sql.quote(ssql.EVENT_ID)} FROM {sql.quote(self.table)} AS t "
                f"WHERE {where} ORDER BY 1",
                params,
            )
            found += [row[0] for row in cursor.fetchall()]
        return found

    def pending(self, cursor: Any) -> int:
        """Rows present now in the newest seal's open gaps."""
        if self.encoding is None:
            return 0
        return len(self._ids_in(cursor, self.open_runs()))

    def unsealed(self, using: str) -> tuple[int, bool]:
        """(rows above the newest seal's high-water mark, whether that count is exact)."""
        if self.encoding is None:
            return 0, True
        high = self.records[-1].last_id if self.records else 0
        count = count_rows(
            f"SELECT 1 FROM {sql.quote(self.table)} WHERE {sql.quote(ssql.EVENT_ID)} > {int(high)}",
            (),
            tables=[self.table],
            using=using,
        )
        return count.value, count.exact
