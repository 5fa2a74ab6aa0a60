"""The chain of seal records: their canonical form, hashes, and sets of event ids.

Pure Python, no database. Every record (a sealed batch of one event table, or a
prune) is hashed over a canonical JSON form of its fields and the previous record's
hash, and authenticated over that hash (``seal_keys``). A batch's root hashes its
chunks; a chunk's hash covers its event ids and its rows' digests. Sets of event ids
are kept as sorted, inclusive runs ``[[first, last], ...]``.
"""

from __future__ import annotations

import bisect
import datetime
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

#: Version of the canonical form; part of every record's hash.
FORMAT = 1
#: The previous hash of the first record.
GENESIS = bytes(32)

Runs = list[list[int]]


def runs_of(ids: Iterable[int]) -> Runs:
    """Sorted distinct ids as inclusive runs: [1, 2, 3, 7] -> [[1, 3], [7, 7]]."""
    runs: Runs = []
    for event_id in ids:
        if runs and event_id == runs[-1][1] + 1:
            runs[-1][1] = event_id
        elif not runs or event_id > runs[-1][1]:
            runs.append([event_id, event_id])
    return runs


def ids_of(runs: Sequence[Sequence[int]]) -> list[int]:
    """The ids of ``runs``, in order."""
    return [i for first, last in runs for i in range(first, last + 1)]


def count_of(runs: Sequence[Sequence[int]]) -> int:
    """How many ids ``runs`` hold."""
    return sum(last - first + 1 for first, last in runs)


def merge_runs(*groups: Sequence[Sequence[int]]) -> Runs:
    """The union of several run lists, as runs."""
    merged: Runs = []
    for first, last in sorted((int(a), int(b)) for group in groups for a, b in group):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return merged


def subtract_runs(runs: Sequence[Sequence[int]], remove: Sequence[Sequence[int]]) -> Runs:
    """``runs`` without the ids of ``remove``."""
    result: Runs = []
    removing = merge_runs(remove)
    for first, last in merge_runs(runs):
        start = first
        for r_first, r_last in removing:
            if r_last < start or r_first > last:
                continue
            if r_first > start:
                result.append([start, r_first - 1])
            start = max(start, r_last + 1)
        if start <= last:
            result.append([start, last])
    return result


class RunSet:
    """Membership tests against a sorted run list (bisect, no expansion)."""

    def __init__(self, runs: Sequence[Sequence[int]]) -> None:
        self.runs = merge_runs(runs)
        self.firsts = [first for first, _ in self.runs]

    def __contains__(self, event_id: int) -> bool:
        i = bisect.bisect_right(self.firsts, event_id) - 1
        return i >= 0 and event_id <= self.runs[i][1]

    def __bool__(self) -> bool:
        return bool(self.runs)


def gaps_between(low: int, high: int, runs: Sequence[Sequence[int]]) -> Runs:
    """The ids in (low, high] that are not in ``runs`` (sorted, all above ``low``)."""
    gaps: Runs = []
    expected = low + 1
    for first, last in runs:
        if first > expected:
            gaps.append([expected, min(first - 1, high)])
        expected = max(expected, last + 1)
    if expected <= high:
        gaps.append([expected, high])
    return [gap for gap in gaps if gap[0] <= gap[1]]


def runs_text(runs: Sequence[Sequence[int]], limit: int = 8) -> str:
    """Runs for people: "101-125, 130", with "and N more" past ``limit`` runs."""
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    if len(runs) > limit:
        parts.append(f"and {len(runs) - limit} more ranges")
    return ", ".join(parts)


# -- canonical form and hashes -----------------------------------------------------------------


def timestamp(value: datetime.datetime) -> str:
    """A time as it is hashed: UTC, ISO 8601, microseconds."""
    return value.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def canonical(fields: dict[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no spaces, bytes as hex, times in UTC."""

    def default(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).hex()
        if isinstance(value, datetime.datetime):
            return timestamp(value)
        raise TypeError(f"cannot hash {type(value).__name__} in a seal record")

    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default
    ).encode("utf-8")


def record_hash(fields: dict[str, Any]) -> bytes:
    """SHA-256 of a record's canonical form (``fields`` include the previous hash)."""
    return hashlib.sha256(b"audit-seal-record\n" + canonical({"v": FORMAT, **fields})).digest()


def chunk_hash(ids: Sequence[Sequence[int]], rows: bytes) -> bytes:
    """SHA-256 of a chunk: its id runs, then its rows' stored bytes."""
    digest = hashlib.sha256(b"audit-seal-chunk\n" + canonical({"ids": ids}) + b"\n")
    digest.update(rows)
    return digest.digest()


def root_of(chunk_hashes: Iterable[bytes]) -> bytes:
    """SHA-256 over a batch's chunk hashes in order."""
    digest = hashlib.sha256(b"audit-seal-root\n")
    for value in chunk_hashes:
        digest.update(value)
    return digest.digest()
