"""Pure SQL generation for time-partitioned event tables: no Django, no connection.

An event table partitioned by time is a PostgreSQL range-partitioned table on
``audit_created_at``. Its partitions are named for what they hold:

- ``<table>_p20261201``: one interval, named by its first day (UTC);
- ``<table>_upto20261201``: everything before that day (a table converted with its
  history becomes this partition, so nothing is rewritten);
- ``<table>_default``: the safety net, rows whose time no other partition covers.

Names only help people: the code reads each partition's range from the catalog.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence

from audit_app.sql import CREATED_AT, literal, quote

INTERVALS = ("day", "week", "month")
UTC = datetime.timezone.utc

# The comment an event table carries while it is partitioned: the migration state
# (the event model's db_table_comment) and the database say the same.
COMMENT_PREFIX = "audit history, partitioned by "

# Every partition of an append-only event table refuses UPDATE, DELETE and TRUNCATE
# aimed at it directly: a statement-level trigger of the parent fires only for
# statements on the parent.
GUARD_FUNCTION = "audit_app_partition_guard"
GUARD_TRIGGER = "audit_append_only"

GUARD_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {GUARD_FUNCTION}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = TG_OP || ' on ' || TG_TABLE_NAME || ' refused: audit history is append-only',
        ERRCODE = 'insufficient_privilege',
        HINT = 'Use manage.py audit prune to remove old events.';
END
$$;
"""


def table_comment(interval: str | None) -> str | None:
    return f"{COMMENT_PREFIX}{interval}" if interval else None


def check_interval(value: str | None) -> str | None:
    """``value`` if it is a partition interval (or None); a clear error otherwise."""
    if value is None or value in INTERVALS:
        return value
    raise ValueError(
        f"{value!r} is not a partition interval; choose one of {', '.join(INTERVALS)}."
    )


def floor(moment: datetime.datetime, interval: str) -> datetime.datetime:
    """The start (UTC) of the interval that holds ``moment``."""
    moment = moment.astimezone(UTC)
    day = datetime.datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if interval == "day":
        return day
    if interval == "week":
        return day - datetime.timedelta(days=day.weekday())  # Monday, as date_trunc('week')
    return day.replace(day=1)


def step(start: datetime.datetime, interval: str) -> datetime.datetime:
    """The start of the interval after the one starting at ``start``."""
    if interval == "day":
        return start + datetime.timedelta(days=1)
    if interval == "week":
        return start + datetime.timedelta(days=7)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def fit_name(table: str, suffix: str) -> str:
    """``table`` + ``suffix``, shortened to fit PostgreSQL's 63-byte identifiers (a long
    table name gives way to a digest)."""
    if len(table) + len(suffix) <= 63:
        return table + suffix
    digest = hashlib.md5(table.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{table[: 63 - len(suffix) - 9]}_{digest}{suffix}"


def partition_name(table: str, lower: datetime.datetime) -> str:
    return fit_name(table, f"_p{lower:%Y%m%d}")


def past_partition_name(table: str, upper: datetime.datetime) -> str:
    return fit_name(table, f"_upto{upper:%Y%m%d}")


def default_partition_name(table: str) -> str:
    return fit_name(table, "_default")


def _bound(moment: datetime.datetime | None, open_end: str) -> str:
    return open_end if moment is None else f"({literal(moment.isoformat())})"


def range_clause(lower: datetime.datetime | None, upper: datetime.datetime | None) -> str:
    return f"FOR VALUES FROM {_bound(lower, '(MINVALUE)')} TO {_bound(upper, '(MAXVALUE)')}"


def within(lower: datetime.datetime | None, upper: datetime.datetime | None) -> str:
    """A condition on the event time: ``lower <= time < upper`` (None: unbounded)."""
    parts = []
    if lower is not None:
        parts.append(f"{quote(CREATED_AT)} >= {literal(lower.isoformat())}")
    if upper is not None:
        parts.append(f"{quote(CREATED_AT)} < {literal(upper.isoformat())}")
    return " AND ".join(parts) or "true"


def guard_sql(partition: str) -> str:
    return (
        f"CREATE TRIGGER {quote(GUARD_TRIGGER)} BEFORE UPDATE OR DELETE OR TRUNCATE "
        f"ON {quote(partition)} FOR EACH STATEMENT EXECUTE FUNCTION {GUARD_FUNCTION}()"
    )


def new_partition_sql(
    parent: str,
    name: str,
    lower: datetime.datetime,
    upper: datetime.datetime,
    *,
    guarded: bool,
    default: str | None = None,
    columns: Sequence[str] = (),
) -> list[str]:
    """Create and attach the partition ``name`` for ``[lower, upper)``.

    Built as a table of its own and then attached: ``CREATE TABLE ... PARTITION OF``
    would lock out the parent's writers, ``ATTACH PARTITION`` does not. Its range
    constraint spares the attach a scan. Rows of that range in the ``default``
    partition (strays) move into it first, or the attach would fail; ``columns`` are
    the table's columns, needed for that move.
    """
    check = quote(name[:50] + "_range")
    statements = [
        f"CREATE TABLE {quote(name)} (LIKE {quote(parent)})",
        f"ALTER TABLE {quote(name)} ADD CONSTRAINT {check} CHECK ({within(lower, upper)})",
    ]
    if default is not None:
        statements += move_strays_sql(default, name, lower, upper, columns, guarded=guarded)
    if guarded:
        statements.append(guard_sql(name))
    statements.append(
        f"ALTER TABLE {quote(parent)} ATTACH PARTITION {quote(name)} {range_clause(lower, upper)}"
    )
    return statements


def move_strays_sql(
    default: str,
    target: str,
    lower: datetime.datetime,
    upper: datetime.datetime,
    columns: Sequence[str],
    *,
    guarded: bool,
) -> list[str]:
    """Move the safety net's rows of ``[lower, upper)`` into ``target`` (one transaction)."""
    names = ", ".join(map(quote, columns))
    condition = within(lower, upper)
    delete = [f"DELETE FROM {quote(default)} WHERE {condition}"]
    if guarded:
        # The default partition's own guard refuses the DELETE; only this transaction
        # skips it, and only the default partition (rarely written) is locked meanwhile.
        toggle = f"ALTER TABLE {quote(default)} %s TRIGGER {quote(GUARD_TRIGGER)}"
        delete = [toggle % "DISABLE", *delete, toggle % "ENABLE"]
    return [
        f"INSERT INTO {quote(target)} ({names}) SELECT {names} FROM {quote(default)} "
        f"WHERE {condition}",
        *delete,
    ]


def default_partition_sql(parent: str, *, guarded: bool) -> list[str]:
    name = default_partition_name(parent)
    statements = [f"CREATE TABLE {quote(name)} PARTITION OF {quote(parent)} DEFAULT"]
    if guarded:
        statements.append(guard_sql(name))
    return statements


PARTITIONS_SQL = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), pg_total_relation_size(c.oid)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass(%s)
ORDER BY c.relname
"""

IS_PARTITIONED_SQL = "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)"


def key_index_name(table: str) -> str:
    return fit_name(table, "_audit_key")


def range_check_name(table: str) -> str:
    return fit_name(table, "_audit_range")


def drop_range_check_sql(table: str) -> str:
    return f"ALTER TABLE {quote(table)} DROP CONSTRAINT IF EXISTS {quote(range_check_name(table))}"


def prepare_conversion_sql(
    table: str, upper: datetime.datetime, *, concurrently: bool
) -> list[str]:
    """Steps before a table with history becomes the partition of everything before
    ``upper``; none of them stops its writers (each may run in its own transaction).

    A validated range constraint spares the attach its scan; a unique index on (id,
    time) becomes the partition's share of the partitioned table's primary key. A
    second run starts over cleanly.
    """
    check, key = quote(range_check_name(table)), quote(key_index_name(table))
    concurrent = " CONCURRENTLY" if concurrently else ""
    return [
        f"{drop_range_check_sql(table)}, ADD CONSTRAINT {check} "
        f"CHECK ({within(None, upper)}) NOT VALID",
        f"ALTER TABLE {quote(table)} VALIDATE CONSTRAINT {check}",
        f"DROP INDEX{concurrent} IF EXISTS {key}",
        f"CREATE UNIQUE INDEX{concurrent} {key} ON {quote(table)} (audit_id, {quote(CREATED_AT)})",
    ]


def switch_sql(
    table: str,
    upper: datetime.datetime,
    *,
    sequence: str,
    identity: bool,
    primary_key: str,
    indexes: Sequence[tuple[str, str]],
    triggers: Sequence[tuple[str, str, str | None]],
) -> list[str]:
    """Swap ``table`` for a partitioned table of the same name that holds it, as the
    partition of everything before ``upper``: one short transaction, catalog work only.

    ``indexes`` are (name, definition after ``USING``) of its indexes other than the
    primary key; the partitioned table gets the same ones under the same names, and the
    attach adopts the existing indexes instead of building new ones. ``triggers`` are
    (name, definition, comment): they move to the partitioned table, comments and all
    (django-pgtrigger keeps its hash there). The id sequence carries on.
    """
    past = past_partition_name(table, upper)
    new_sequence = fit_name(table, "_audit_seq_new")
    statements = [f"LOCK TABLE {quote(table)} IN ACCESS EXCLUSIVE MODE"]
    if identity:
        # An identity column's sequence dies with the identity: copy its position into
        # a free-standing sequence first (no writer runs while the lock is held).
        statements += [
            f"CREATE SEQUENCE {quote(new_sequence)} AS bigint",
            f"SELECT setval({literal(quote(new_sequence))}, last_value, is_called) "
            f"FROM {quote(sequence)}",
            f"ALTER TABLE {quote(table)} ALTER COLUMN audit_id DROP IDENTITY",
            f"ALTER SEQUENCE {quote(new_sequence)} RENAME TO {quote(sequence)}",
        ]
    else:
        statements += [
            f"ALTER TABLE {quote(table)} ALTER COLUMN audit_id DROP DEFAULT",
            f"ALTER SEQUENCE {quote(sequence)} OWNED BY NONE",
        ]
    statements += [
        f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(primary_key)}, "
        f"ADD CONSTRAINT {quote(fit_name(past, '_pkey'))} "
        f"PRIMARY KEY USING INDEX {quote(key_index_name(table))}",
        *(
            f"ALTER INDEX {quote(name)} RENAME TO {quote(fit_name(past, f'_i{number}'))}"
            for number, (name, _definition) in enumerate(indexes)
        ),
        *(f"DROP TRIGGER {quote(name)} ON {quote(table)}" for name, _, _ in triggers),
        f"ALTER TABLE {quote(table)} RENAME TO {quote(past)}",
        f"CREATE TABLE {quote(table)} (LIKE {quote(past)} INCLUDING COMMENTS INCLUDING STORAGE "
        f"INCLUDING COMPRESSION) PARTITION BY RANGE ({quote(CREATED_AT)})",
        f"ALTER TABLE {quote(table)} ALTER COLUMN audit_id "
        f"SET DEFAULT nextval({literal(quote(sequence))}::regclass)",
        f"ALTER SEQUENCE {quote(sequence)} OWNED BY {quote(table)}.audit_id",
        f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(primary_key)} "
        f"PRIMARY KEY (audit_id, {quote(CREATED_AT)})",
        *(
            f"CREATE INDEX {quote(name)} ON {quote(table)} USING {definition}"
            for name, definition in indexes
        ),
        *(definition for _, definition, _ in triggers),
        *(
            f"COMMENT ON TRIGGER {quote(name)} ON {quote(table)} IS {literal(comment)}"
            for name, _, comment in triggers
            if comment
        ),
        f"ALTER TABLE {quote(table)} ATTACH PARTITION {quote(past)} {range_clause(None, upper)}",
    ]
    return statements
