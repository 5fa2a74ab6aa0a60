"""Pure SQL generation for retention: no Django, no connection.

Prune removes events in three ways: partitions that lie wholly before the cut-off are
detached (and dropped, or kept for archiving); the rest goes in batches of ``DELETE``;
context rows no event points at any more go last. The SQL of each step is here.
"""

from __future__ import annotations

from collections.abc import Sequence

from audit_app import partition_sql as psql
from audit_app.sql import CONTEXT, CONTEXT_KEY_MIN, CONTEXT_TABLE, CREATED_AT, EVENT_ID, quote

# A detached partition kept for archiving is renamed with this suffix: ``audit
# partitions`` never takes it for a live one, and a partition of the same range made
# later (for strays) does not collide with it.
ARCHIVED_SUFFIX = "_archived"
# Statement trigger that makes an archived table refuse every change.
ARCHIVED_TRIGGER = "audit_archived"


def archived_name(partition: str) -> str:
    return psql.fit_name(partition, ARCHIVED_SUFFIX)


def detach_sql(parent: str, partition: str) -> list[str]:
    """Detach ``partition`` from ``parent`` and rename it ``<partition>_archived``.

    Not ``CONCURRENTLY``: PostgreSQL refuses that while a default partition exists.
    Catalog work only; run with short lock waits. The table then refuses inserts too:
    nothing routes rows to it any more, and nothing else should write it.
    """
    archived = archived_name(partition)
    return [
        f"ALTER TABLE {quote(parent)} DETACH PARTITION {quote(partition)}",
        f"ALTER TABLE {quote(partition)} RENAME TO {quote(archived)}",
        f"CREATE TRIGGER {quote(ARCHIVED_TRIGGER)} BEFORE INSERT OR UPDATE OR DELETE "
        f"ON {quote(archived)} FOR EACH STATEMENT EXECUTE FUNCTION {psql.GUARD_FUNCTION}()",
    ]


def id_runs_sql(table: str, limit: int) -> str:
    """The ids of ``table`` as inclusive runs ``(first, last, count)``, in order, at most
    ``limit`` runs after the id ``%s`` (gaps and islands: an id minus its rank is the
    same along a run)."""
    return (
        f"SELECT min(id), max(id), count(*) FROM (SELECT {quote(EVENT_ID)} AS id, "
        f"{quote(EVENT_ID)} - row_number() OVER (ORDER BY {quote(EVENT_ID)}) AS island "
        f"FROM {quote(table)} WHERE {quote(EVENT_ID)} > %s) AS ids "
        f"GROUP BY island ORDER BY 1 LIMIT {int(limit)}"
    )


def delete_batch_sql(table: str, key: str, where: str, batch_size: int) -> str:
    """Delete the next ``batch_size`` rows matching ``where`` with a key above ``%s``;
    return their keys.

    ``where`` is repeated outside so that the planner prunes partitions for the delete
    itself too; the key floor skips the rows earlier batches deleted (their index
    entries stay until vacuum). ``where``'s parameters come twice, the floor between.
    """
    quoted, column = quote(table), quote(key)
    return (
        f"DELETE FROM {quoted} WHERE {where} AND {column} IN (SELECT {column} FROM {quoted} "
        f"WHERE {where} AND {column} > %s ORDER BY {column} LIMIT {int(batch_size)}) "
        f"RETURNING {column}"
    )


# -- context rows --------------------------------------------------------------------------------

# Context ids come from two spaces: the sequence (below 2**62) and the time-ordered keys
# of context frames (from 2**62). Per space, the id range of the rows made before the
# cut-off: one pass over the context table.
CONTEXT_RANGES_SQL = (
    f"SELECT min(id), max(id) FROM {quote(CONTEXT_TABLE)} WHERE created_at < %s "
    f"GROUP BY id >= {CONTEXT_KEY_MIN} ORDER BY 1"
)

# Tables whose rows point at context rows: every table (not a partition) with an event
# table's context column (event tables live, retired or archived), and the bypass table.
REFERRING_TABLES_SQL = (
    "SELECT c.relname FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') "
    f"AND NOT c.relispartition AND a.attname = '{CONTEXT}' AND NOT a.attisdropped "
    "ORDER BY c.relname"
)


def referenced_sql(
    tables: Sequence[tuple[str, str]], ranges: Sequence[tuple[int, int]]
) -> tuple[str, list[int]]:
    """The distinct context ids within ``ranges`` that rows of ``tables`` ((table,
    column) pairs) point at: one index range scan per table and range, no probe per
    context."""
    parts, params = [], []
    for table, column in tables:
        for low, high in ranges:
            parts.append(
                f"SELECT {quote(column)} AS id FROM {quote(table)} "
                f"WHERE {quote(column)} BETWEEN %s AND %s"
            )
            params += [low, high]
    return "\nUNION\n".join(parts), params


def delete_contexts_sql(batch_size: int) -> str:
    """Delete the next ``batch_size`` context rows made before ``%(before)s`` with an id
    in (``%(after)s``, ``%(high)s``] and not in ``%(kept)s``."""
    table = quote(CONTEXT_TABLE)
    return (
        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
        "WHERE id > %(after)s AND id <= %(high)s AND created_at < %(before)s "
        "AND NOT (id = ANY(%(kept)s::bigint[])) "
        f"ORDER BY id LIMIT {int(batch_size)}) RETURNING id"
    )


def count_before_sql(table: str) -> str:
    return f"SELECT count(*) FROM {quote(table)} WHERE {quote(CREATED_AT)} < %s"
