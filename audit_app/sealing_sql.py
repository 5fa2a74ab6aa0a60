"""Pure SQL of sealing: how an event row becomes a digest, and the catalog reads it needs.

An event row is encoded as the values of its columns in the order of their sorted
*canonical keys*, each value as bytes that do not depend on session settings or on
the database's object ids (the binary send format of plain scalar types, UTF-8 text
otherwise), framed by ``record_send(ROW(...))`` of byteas (which records each value's
length and marks NULLs). The keys a batch was sealed with are stored with it, so the
encoding of an old row never changes when a column is added (an added column is
appended only where it is not NULL) or renamed (a column keeps the key of its
``audit:key=<key>`` comment). The row's digest is the first 16 bytes of the SHA-256
of that encoding; the content of the context row the event points at is part of it,
under the key ``audit:context``.

Besides the digest, each row gets a 16-bit fingerprint per key: they only name the
columns that changed, the digest is what detects it.

Nothing here runs a query except ``sealed_columns``, which reads the catalog through
a DB-API cursor it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit_app import sql
from audit_app.exceptions import SealError

SEAL_TABLE = "audit_app_seal"
CHUNK_TABLE = "audit_app_seal_chunk"
RUN_TABLE = "audit_app_integrity_run"
EVENT_ID = sql.EVENT_ID
CONTEXT_ID = sql.CONTEXT

#: Rows per stored chunk of digests: one query per chunk, a few hundred KiB each.
CHUNK_ROWS = 4096
#: Bytes of a row's SHA-256 kept as its digest (128 bits).
DIGEST_BYTES = 16
#: The key under which an event's context row is part of its encoding.
CONTEXT_KEY = "audit:context"
#: A column comment starting with this names the column's canonical key.
KEY_COMMENT = "audit:key="

#: Settings every sealing and verifying transaction runs with, so that the text form
#: of values (used for types without a plain binary form) is the same in every session.
SESSION_SETTINGS = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)

# Built-in scalar types (fixed OIDs) whose binary send format holds neither an OID nor
# text in the client's encoding: their value bytes are that format. Every other type
# (text, JSON, arrays, enums, domains, extension types) is encoded as its UTF-8 text.
BINARY_SEND = {
    16: "boolsend",
    17: "byteasend",
    20: "int8send",
    21: "int2send",
    23: "int4send",
    26: "oidsend",
    700: "float4send",
    701: "float8send",
    1082: "date_send",
    1083: "time_send",
    1114: "timestamp_send",
    1184: "timestamptz_send",
    1186: "interval_send",
    1266: "timetz_send",
    1700: "numeric_send",
    2950: "uuid_send",
}

# Every column of a table that is still there, with its comment and type.
_COLUMNS_SQL = (
    "SELECT a.attname, d.description, a.atttypid::int FROM pg_attribute AS a "
    "LEFT JOIN pg_description AS d ON d.objoid = a.attrelid "
    "AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum "
    "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)


class SchemaError(SealError, ValueError):
    """A table whose columns cannot be encoded unambiguously."""


@dataclass(frozen=True)
class Column:
    """A column of a sealed table: its name now, its canonical key and its type."""

    name: str
    key: str
    type_oid: int


def key_of(column: str, comment: str | None) -> str:
    """The canonical key of a column: its comment's ``audit:key=`` value, else its name."""
    if comment and comment.startswith(KEY_COMMENT):
        return comment[len(KEY_COMMENT) :].strip()
    return column


def sealed_columns(cursor: Any, table: str) -> list[Column]:
    """The columns of ``table`` in attribute order, each with its canonical key.

    Empty when the table does not exist. Two columns with one key cannot be told
    apart in the encoding: SchemaError says which.
    """
    columns = column_keys(cursor, table)
    seen: dict[str, str] = {}
    for column in columns:
        if column.key in seen or column.key == CONTEXT_KEY:
            other = seen.get(column.key, CONTEXT_KEY)
            raise SchemaError(
                f"Columns {other!r} and {column.name!r} of {table} share the canonical key "
                f"{column.key!r}, so their values cannot be told apart in sealed history. "
                f"Give one of them a comment 'audit:key=<another key>'."
            )
        seen[column.key] = column.name
    return columns


def column_keys(cursor: Any, table: str) -> list[Column]:
    """The columns of ``table`` in attribute order with their keys, clashes included."""
    cursor.execute(_COLUMNS_SQL, [sql.quote(table)])
    return [Column(name, key_of(name, comment), oid) for name, comment, oid in cursor.fetchall()]


def canonical_columns(cursor: Any, table: str) -> list[tuple[str, str]]:
    """(column, canonical key) of each column of ``table``, in attribute order."""
    return [(c.name, c.key) for c in sealed_columns(cursor, table)]


# -- values, digests, rows -------------------------------------------------------------------


def value_sql(ref: str, type_oid: int) -> str:
    """The bytes that encode one value (NULL stays NULL)."""
    send = BINARY_SEND.get(type_oid)
    if send:
        return f"{send}({ref})"
    return f"convert_to({ref}::text, 'UTF8')"


def fingerprint_sql(ref: str, type_oid: int) -> str:
    """A 32-bit hash of one value, 0 for NULL: which column changed, not whether."""
    if type_oid in BINARY_SEND:
        # hash_record of a one-field row uses the type's own hash function.
        return f"(CASE WHEN {ref} IS NULL THEN 0 ELSE hash_record(ROW({ref})) END)"
    return f"coalesce(hashtext({ref}::text), 0)"


def _pack_sql(fingerprints: Sequence[str]) -> str:
    """16 bits of each fingerprint, four to a big-endian int8, as bytes."""
    packs = []
    for start in range(0, len(fingerprints), 4):
        # PostgreSQL gives <<, >>, & and | one precedence, left to right: bracket each.
        parts = [
            f"(((({f}) >> 16)::int8 & 65535) << {48 - 16 * i})"
            for i, f in enumerate(fingerprints[start : start + 4])
        ]
        packs.append(f"int8send({' | '.join(parts)})")
    return " || ".join(packs)


def fingerprint_count(keys: Sequence[str]) -> int:
    """Fingerprints stored per row: one per key plus the context's, padded to fours."""
    return -(-(len(keys) + 1) // 4) * 4


def row_size(keys: Sequence[str]) -> int:
    """Bytes stored per sealed row: the digest, then 2 bytes per fingerprint."""
    return DIGEST_BYTES + 2 * fingerprint_count(keys)


def _encoding_sql(
    keys: Sequence[str], columns: Sequence[Column], alias: str, extra: Sequence[str] = ()
) -> tuple[str, list[str]]:
    """(bytes encoding a row of ``alias``, fingerprint expressions) over ``keys``.

    A key without a column now reads as NULL. A column whose key is not in ``keys``
    (added since) is appended, with its key, only where it is not NULL. ``extra`` are
    further bytea values appended to the row (the context's digest).
    """
    by_key = {c.key: c for c in columns}
    values, fingerprints = [], []
    for key in keys:
        column = by_key.get(key)
        if column is None:
            values.append("NULL::bytea")
            fingerprints.append("0")
            continue
        ref = f"{alias}.{sql.quote(column.name)}"
        values.append(value_sql(ref, column.type_oid))
        fingerprints.append(fingerprint_sql(ref, column.type_oid))
    encoding = f"record_send(ROW({', '.join([*values, *extra])}))"
    for column in columns:
        if column.key in keys:
            continue
        ref = f"{alias}.{sql.quote(column.name)}"
        encoding += (
            f" || CASE WHEN {ref} IS NULL THEN ''::bytea ELSE record_send(ROW("
            f"convert_to({sql.literal(column.key)}, 'UTF8'), {value_sql(ref, column.type_oid)}"
            ")) END"
        )
    return encoding, fingerprints


def context_digest_sql(keys: Sequence[str], columns: Sequence[Column], alias: str) -> str:
    """SHA-256 of a context row's encoding over ``keys``."""
    encoding, _ = _encoding_sql(keys, columns, alias)
    return f"sha256({encoding})"


def row_sql(
    keys: Sequence[str], columns: Sequence[Column], alias: str = "e", context: str = "c.digest"
) -> str:
    """An event row's stored bytes: its 16-byte digest, then its packed fingerprints.

    ``context`` is the SQL of the digest of the context row it points at (NULL for
    none), encoded after the row's own keys.
    """
    encoding, fingerprints = _encoding_sql(keys, columns, alias, extra=[context])
    fingerprints.append(
        f"coalesce((get_byte({context}, 0) << 24) | (get_byte({context}, 1) << 16), 0)"
    )
    while len(fingerprints) % 4:
        fingerprints.append("0")
    return f"substr(sha256({encoding}), 1, {DIGEST_BYTES}) || {_pack_sql(fingerprints)}"


@dataclass(frozen=True)
class Encoding:
    """What a batch was sealed with: the event table's keys and the context table's."""

    keys: tuple[str, ...]
    context_keys: tuple[str, ...]


def chunk_sql(
    table: str,
    encoding: Encoding,
    columns: Sequence[Column],
    context_columns: Sequence[Column],
    where: str,
    limit: int = CHUNK_ROWS,
) -> str:
    """One query that digests the rows of ``table`` matching ``where`` (alias ``t``),
    at most ``limit`` of them in id order: (their ids, their stored bytes in id order).

    Each distinct context row is digested once per chunk.
    """
    event_id = sql.quote(EVENT_ID)
    context_id = sql.quote(CONTEXT_ID)
    context = context_digest_sql(encoding.context_keys, context_columns, "x")
    return (
        f"WITH e AS MATERIALIZED (SELECT * FROM {sql.quote(table)} AS t WHERE {where} "
        f"ORDER BY t.{event_id} LIMIT {int(limit)}), "
        f"c AS (SELECT d.id, (SELECT {context} FROM {sql.quote(sql.CONTEXT_TABLE)} AS x "
        f"WHERE x.id = d.id) AS digest FROM (SELECT DISTINCT {context_id} AS id FROM e) AS d) "
        f"SELECT array_agg(e.{event_id} ORDER BY e.{event_id}), "
        f"string_agg({row_sql(encoding.keys, columns)}, ''::bytea ORDER BY e.{event_id}) "
        f"FROM e LEFT JOIN c ON c.id = e.{context_id}"
    )


def added_columns_sql(table: str, keys: Sequence[str], columns: Sequence[Column]) -> str | None:
    """Per row of ``table`` with ``audit_id = ANY(%s)``: the keys of columns added since
    the batch (not in ``keys``) that hold a value. None when there are no such columns."""
    added = [c for c in columns if c.key not in keys]
    if not added:
        return None
    cases = ", ".join(
        f"CASE WHEN t.{sql.quote(c.name)} IS NOT NULL THEN {sql.literal(c.key)} END" for c in added
    )
    return (
        f"SELECT t.{sql.quote(EVENT_ID)}, array_remove(ARRAY[{cases}], NULL) "
        f"FROM {sql.quote(table)} AS t WHERE t.{sql.quote(EVENT_ID)} = ANY(%s)"
    )


def runs_where(runs: Sequence[Sequence[int]], alias: str = "t") -> tuple[str, list[int]]:
    """A WHERE clause matching event ids in inclusive ``runs`` [[first, last], ...]."""
    ref = f"{alias}.{sql.quote(EVENT_ID)}"
    if not runs:
        return "FALSE", []
    parts, params = [], []
    for first, last in runs:
        if first == last:
            parts.append(f"{ref} = %s")
            params.append(first)
        else:
            parts.append(f"{ref} BETWEEN %s AND %s")
            params += [first, last]
    return "(" + " OR ".join(parts) + ")", params


def after_where(low: int, high: int, alias: str = "t") -> tuple[str, list[int]]:
    """A WHERE clause matching event ids in (low, high]."""
    ref = f"{alias}.{sql.quote(EVENT_ID)}"
    return f"{ref} > %s AND {ref} <= %s", [low, high]


# -- transactions that may still write ---------------------------------------------------------

#: Per table (of ``%s::text[]``, quoted names): the virtual transaction ids holding a
#: lock that writing needs. A writer takes that lock before it draws an event id from
#: the sequence and keeps it until it ends, so an id drawn but not yet visible belongs
#: to one of these transactions.
WRITERS_SQL = (
    "SELECT t.name, coalesce(array_agg(DISTINCT l.virtualtransaction) "
    "FILTER (WHERE l.virtualtransaction IS NOT NULL), '{}') "
    "FROM unnest(%s::text[]) AS t(name) LEFT JOIN pg_locks AS l "
    "ON l.locktype = 'relation' AND l.relation = to_regclass(t.name) AND l.granted "
    "AND l.mode NOT IN ('AccessShareLock', 'RowShareLock') "
    # Prepared transactions hold their locks without a backend (pid NULL).
    "AND l.pid IS DISTINCT FROM pg_backend_pid() "
    "GROUP BY t.name"
)

#: The cache size of the sequence behind a table's event ids (no row: no sequence).
SEQUENCE_CACHE_SQL = (
    "SELECT seqcache, seqrelid::regclass::text FROM pg_sequence "
    "WHERE seqrelid = pg_get_serial_sequence(%s, %s)::regclass"
)

# One lock for everything that appends to the chain (seal, prune): a session-level
# advisory lock, taken before the sealing transaction's snapshot.
CHAIN_LOCK_KEY = 0x6175646974_5345  # "audit" "SE"
TRY_CHAIN_LOCK_SQL = f"SELECT pg_try_advisory_lock({CHAIN_LOCK_KEY})"
CHAIN_LOCK_SQL = f"SELECT pg_advisory_lock({CHAIN_LOCK_KEY})"
CHAIN_UNLOCK_SQL = f"SELECT pg_advisory_unlock({CHAIN_LOCK_KEY})"


def session_settings_sql() -> list[str]:
    """``SET LOCAL`` statements of ``SESSION_SETTINGS``."""
    return [f"SET LOCAL {name} = {sql.literal(value)}" for name, value in SESSION_SETTINGS]
