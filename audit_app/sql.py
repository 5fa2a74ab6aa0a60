"""Pure SQL generation for event capture: no Django models, no database connection.

Every function here turns a declaration (tables, columns, labels) into SQL text, so the
SQL can be read and tested on its own. Triggers installed by migrations embed this text:
changing what it produces changes every user's migrations and is a deliberate act
(bump ``TEMPLATE_VERSION`` and note it in the changelog).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgtrigger.compiler import UpsertTriggerSql

TEMPLATE_VERSION = 1

# System columns of every event table share one short prefix.
CREATED_AT = "audit_created_at"
LABEL = "audit_label"
CONTEXT = "audit_context_id"
USER = "audit_user_id"
EVENT_ID = "audit_id"

CONTEXT_TABLE = "audit_app_context"
BYPASS_TABLE = "audit_app_bypass"
CONTEXT_FUNCTION = "audit_app_context_id"

# Transaction-local settings written by the Python side (audit_app.context).
CONTEXT_GUC = "audit.context"
# The context frame's key: lets the transactions of one request share a context row.
CONTEXT_KEY_GUC = "audit.context_key"
DISABLED_GUC = "audit.disabled"
_SEEN_GUC = "audit.context_seen"
_SEEN_ID_GUC = "audit.context_seen_id"
_KEYED_GUC = "audit.context_keyed"

OLD_TABLE = "audit_old"
NEW_TABLE = "audit_new"
OLD = "o"
NEW = "n"


def quote(identifier: str) -> str:
    """Quote an SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """Quote a string constant that comes from code (labels, table names), not from users."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class EventSpec:
    """Where one tracked table's events go and which of its columns they copy."""

    table: str
    event_table: str
    pk_column: str
    # Tracked columns in event-table order, the primary key included.
    columns: tuple[str, ...]
    masked: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.pk_column not in self.columns:
            raise ValueError(f"{self.table}: the primary key column must be tracked")
        if self.pk_column in self.masked:
            raise ValueError(f"{self.table}: the primary key cannot be masked")


def masked_marker_sql(value: str, pk: str) -> str:
    """A change marker for a masked value: equal markers mean an unchanged value.

    The value never leaves the live table; the marker is a truncated SHA-256 of the value
    and the row's primary key, so two rows with the same secret get different markers.
    """
    return (
        f"CASE WHEN {value} IS NULL THEN NULL ELSE "
        f"left(encode(sha256(convert_to({value}::text || '/' || {pk}::text, 'UTF8')), 'hex'), 16)"
        " END"
    )


def value_sql(spec: EventSpec, row: str, column: str) -> str:
    ref = f"{row}.{quote(column)}"
    if column in spec.masked:
        return masked_marker_sql(ref, f"{row}.{quote(spec.pk_column)}")
    return ref


def insert_into(spec: EventSpec) -> str:
    columns = [CREATED_AT, LABEL, CONTEXT, USER, *spec.columns]
    return f"INSERT INTO {quote(spec.event_table)} ({', '.join(map(quote, columns))})"


# The acting user's key, read from the same handed-over metadata as the context row
# (and typed like its user_id through the context table's row type), so that each
# event carries its user and "events by user" is an index scan per event table.
# A scalar subquery: at statement level PostgreSQL evaluates it once per statement.
CONTEXT_USER_SQL = (
    f"(SELECT r.user_id FROM jsonb_populate_record(NULL::{quote(CONTEXT_TABLE)}, "
    "jsonb_build_object('user_id', "
    f"nullif(current_setting({literal(CONTEXT_GUC)}, true), '')::jsonb -> 'user')) AS r)"
)


def _system_values(label: str, context_sql: str) -> list[str]:
    # clock_timestamp(), not now(): events of one transaction get increasing times, so a
    # timeline across tables shows them in the order they were written.
    return ["clock_timestamp()", literal(label), context_sql, CONTEXT_USER_SQL]


def select_list(spec: EventSpec, row: str, label: str, context_sql: str) -> str:
    values = _system_values(label, context_sql)
    values += [value_sql(spec, row, column) for column in spec.columns]
    return ", ".join(values)


def any_change_sql(columns: Iterable[str]) -> str:
    """Row-level SQL that is true when any of ``columns`` differs between OLD and NEW."""
    parts = [f"OLD.{quote(c)} IS DISTINCT FROM NEW.{quote(c)}" for c in columns]
    return " OR ".join(parts)


_ROW_REF = re.compile(r'\b(OLD|NEW)\."')


def alias_rows(condition_sql: str, old: str, new: str) -> str:
    """Point a row-level condition at statement-level aliases of the transition tables."""
    return _ROW_REF.sub(lambda m: f'{old if m.group(1) == "OLD" else new}."', condition_sql)


def _alias(condition_sql: str) -> str:
    return alias_rows(condition_sql, OLD, NEW)


def bypass_sql(*, row_count_sql: str, source: str = "") -> str:
    """Record a statement that ran while capture was disabled, instead of its events."""
    return (
        f"IF coalesce(current_setting({literal(DISABLED_GUC)}, true), '') <> '' THEN\n"
        f"    INSERT INTO {quote(BYPASS_TABLE)} "
        "(created_at, table_name, operation, row_count, reason, context_id)\n"
        f"    SELECT now(), TG_TABLE_NAME, TG_OP, {row_count_sql}, "
        f"current_setting({literal(DISABLED_GUC)}, true), {CONTEXT_FUNCTION}(){source};\n"
        "    RETURN NULL;\n"
        "END IF;"
    )


# A statement trigger's plan is made for the first transition tables it sees and
# kept for the session: pinned to hash joins, a join planned for one row still scales
# to a million (in bounded memory: hash joins spill to disk, hashed set operations do not).
JOIN_PLAN_SETTINGS = "SET enable_nestloop = off SET enable_mergejoin = off"


def joins_old_rows(operation: str, condition_sql: str) -> bool:
    """Whether an UPDATE trigger compares old and new rows, so needs both images."""
    return operation == "UPDATE" and 'OLD."' in condition_sql


def statement_trigger_body(
    spec: EventSpec, *, label: str, operation: str, row: str, condition_sql: str = ""
) -> str:
    """Body of a statement-level AFTER trigger: one INSERT ... SELECT per statement.

    The context function sits in an uncorrelated scalar subquery, which PostgreSQL runs
    once, and only if some row is selected: a statement that changes nothing writes no
    context row.

    Conditions on old values join the old rows to the new ones by primary key. PL/pgSQL
    keeps the first plan of this statement for the session, so the function must be
    created with ``JOIN_PLAN_SETTINGS`` (``CaptureTrigger`` does): otherwise a nested
    loop planned for a one-row save is reused for a 100,000-row update (quadratic).
    """
    source_table = NEW_TABLE if row == "NEW" else OLD_TABLE
    alias = NEW if row == "NEW" else OLD
    source = f"{quote(source_table)} AS {alias}"
    where = ""
    if joins_old_rows(operation, condition_sql):
        # LEFT JOIN: a row whose primary key changed has no partner under the new key;
        # it is always recorded instead of being silently dropped.
        pk = quote(spec.pk_column)
        source += f" LEFT JOIN {quote(OLD_TABLE)} AS {OLD} ON {OLD}.{pk} = {NEW}.{pk}"
        where = f"\nWHERE {OLD}.{pk} IS NULL OR ({_alias(condition_sql)})"
    elif condition_sql:
        where = f"\nWHERE {_alias(condition_sql)}"
    statement = (
        insert_into(spec)
        + f"\nSELECT {select_list(spec, alias, label, f'(SELECT {CONTEXT_FUNCTION}())')}"
        + f"\nFROM {source}{where}"
    )
    return (
        bypass_sql(row_count_sql="count(*)", source=f" FROM {quote(source_table)}")
        + f"\n{statement};\nRETURN NULL;"
    )


def row_trigger_body(spec: EventSpec, *, label: str, row: str) -> str:
    """Body of a row-level AFTER trigger; its condition goes into the trigger's WHEN."""
    return (
        bypass_sql(row_count_sql="1")
        + "\n"
        + insert_into(spec)
        + f"\nVALUES ({select_list(spec, row, label, f'{CONTEXT_FUNCTION}()')});\nRETURN NULL;"
    )


# The column of a backfill batch that says whether a row's object has an event yet.
HAS_HISTORY = "audit_has_history"


def snapshot_sql(
    spec: EventSpec,
    *,
    label: str,
    where_sql: str,
    limit: int | None = None,
    skip_with_history: bool = False,
) -> str:
    """One batch of events of existing rows (backfill and manual events).

    Reads the rows of the tracked table (aliased ``n``) matching ``where_sql`` (which may
    hold ``%s`` parameters) in key order, at most ``limit``, and writes a ``label`` event
    for each; with ``skip_with_history`` only for rows whose object has no event in
    ``spec.event_table`` yet. Returns one row: (rows read, events written, largest key
    read, largest event id written).
    """
    pk = quote(spec.pk_column)
    # Masked values become markers here: the batch, which PostgreSQL may keep in a
    # temporary file, never holds a secret.
    values = ", ".join(f"{value_sql(spec, NEW, c)} AS {quote(c)}" for c in spec.columns)
    # A scalar subquery, one probe of the (object, created_at) index per row read: as
    # NOT EXISTS it could become an anti-join that hashes the whole event table for
    # every batch, quadratic over a backfill. It runs above the LIMIT, so a batch
    # probes only its own rows.
    probe = (
        f"(SELECT TRUE FROM {quote(spec.event_table)} AS h WHERE h.{pk} = {NEW}.{pk} LIMIT 1)"
        " IS NOT NULL"
        if skip_with_history
        else "FALSE"
    )
    rows = (
        f"SELECT {', '.join(f'{NEW}.{quote(c)}' for c in spec.columns)} "
        f"FROM {quote(spec.table)} AS {NEW} WHERE {where_sql} ORDER BY {NEW}.{pk}"
        + (f" LIMIT {int(limit)}" if limit else "")
    )
    copied = ", ".join(f"{NEW}.{quote(c)}" for c in spec.columns)
    system = ", ".join(_system_values(label, f"(SELECT {CONTEXT_FUNCTION}())"))
    return (
        f"WITH audit_batch AS MATERIALIZED (SELECT {values}, {probe} AS {HAS_HISTORY} "
        f"FROM ({rows}) AS {NEW}),\n"
        f"audit_written AS ({insert_into(spec)}\nSELECT {system}, {copied}\n"
        f"FROM audit_batch AS {NEW} WHERE NOT {NEW}.{HAS_HISTORY} RETURNING {EVENT_ID})\n"
        "SELECT (SELECT count(*) FROM audit_batch), (SELECT count(*) FROM audit_written), "
        # max() is undefined for some key types (uuid): take the last key by ordering.
        f"(SELECT {pk} FROM audit_batch ORDER BY 1 DESC LIMIT 1), "
        f"(SELECT max({EVENT_ID}) FROM audit_written)"
    )


def append_only_body(table_label: str) -> str:
    """Body of the trigger that makes a table refuse UPDATE, DELETE and TRUNCATE.

    No setting switches it off: only the table owner can, by disabling the trigger
    (what ``manage.py audit prune`` does, and records).
    """
    message = literal(f" on {table_label} refused: audit history is append-only")
    return (
        # No "%" anywhere: migrations run this through a parameterised execute().
        "RAISE EXCEPTION USING\n"
        f"    MESSAGE = TG_OP || {message},\n"
        "    ERRCODE = 'insufficient_privilege',\n"
        "    HINT = 'Use manage.py audit prune to remove old events.';"
    )


CONTEXT_FUNCTION_SQL_V1 = f"""
CREATE OR REPLACE FUNCTION {CONTEXT_FUNCTION}() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _raw text := current_setting({literal(CONTEXT_GUC)}, true);
    _id bigint;
BEGIN
    -- No exception block: a caught error per call makes PostgreSQL rescan the queue of
    -- deferred FK checks, which grows with the transaction.
    IF _raw IS NULL OR _raw = '' THEN
        RETURN NULL;
    END IF;
    -- One context row per distinct context per transaction: later calls reuse it.
    IF _raw = current_setting({literal(_SEEN_GUC)}, true) THEN
        RETURN current_setting({literal(_SEEN_ID_GUC)}, true)::bigint;
    END IF;
    INSERT INTO {quote(CONTEXT_TABLE)} (created_at, user_id, metadata)
    SELECT now(), r.user_id, _raw::jsonb
    FROM jsonb_populate_record(
        NULL::{quote(CONTEXT_TABLE)}, jsonb_build_object('user_id', _raw::jsonb -> 'user')
    ) AS r
    RETURNING id INTO _id;
    PERFORM set_config({literal(_SEEN_GUC)}, _raw, true),
            set_config({literal(_SEEN_ID_GUC)}, _id::text, true);
    RETURN _id;
END;
$$;
"""

# The lowest context frame key; sequence-numbered context rows stay below it.
CONTEXT_KEY_MIN = 1 << 62

# The columns of a new context row after its id, from the handed-over metadata ``_raw``
# (the user key typed through the table's own row type).
_CONTEXT_ROW = (
    "now(), r.user_id, _raw::jsonb FROM jsonb_populate_record("
    f"NULL::{quote(CONTEXT_TABLE)}, jsonb_build_object('user_id', _raw::jsonb -> 'user')) AS r"
)

# Version 2: one context row per context frame (say, per request), not per transaction.
# The Python side gives every frame a key in [2**62, 2**63), above any sequence value,
# and the first transaction that writes in the frame stores the row under that key;
# later ones (autocommit saves, a command's many transactions) find and reuse it. The
# advisory lock keeps a transaction from waiting on another, still open one that holds
# the same key (two connections of one thread would deadlock through the client): it
# takes a fresh row instead. A row under the key with other metadata (a key collision)
# is never shared either.
CONTEXT_FUNCTION_SQL_V2 = f"""
CREATE OR REPLACE FUNCTION {CONTEXT_FUNCTION}() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _raw text := current_setting({literal(CONTEXT_GUC)}, true);
    _key bigint;
    _id bigint;
BEGIN
    -- No exception block: a caught error per call makes PostgreSQL rescan the queue of
    -- deferred FK checks, which grows with the transaction.
    IF _raw IS NULL OR _raw = '' THEN
        RETURN NULL;
    END IF;
    -- One lookup per distinct context per transaction: later calls reuse it.
    IF _raw = current_setting({literal(_SEEN_GUC)}, true) THEN
        RETURN current_setting({literal(_SEEN_ID_GUC)}, true)::bigint;
    END IF;
    _key := nullif(current_setting({literal(CONTEXT_KEY_GUC)}, true), '')::bigint;
    -- Read committed only: under repeatable read a row committed after the snapshot
    -- would turn ON CONFLICT into a serialization error. One keyed frame per
    -- transaction: each holds a lock until commit, and a loop of contexts inside one
    -- transaction must not fill the lock table.
    IF _key >= {CONTEXT_KEY_MIN}
       AND current_setting('transaction_isolation') = 'read committed'
       AND coalesce(current_setting({literal(_KEYED_GUC)}, true), '') = ''
       AND pg_try_advisory_xact_lock(_key) THEN
        PERFORM set_config({literal(_KEYED_GUC)}, '1', true);
        -- Insert first: the common case is a new frame. Holding the lock, ON CONFLICT
        -- never waits: whoever wrote the key has committed or rolled back.
        INSERT INTO {quote(CONTEXT_TABLE)} (id, created_at, user_id, metadata)
        SELECT _key, {_CONTEXT_ROW}
        ON CONFLICT (id) DO NOTHING
        RETURNING id INTO _id;
        IF _id IS NULL THEN
            SELECT id INTO _id FROM {quote(CONTEXT_TABLE)}
            WHERE id = _key AND metadata = _raw::jsonb;
        END IF;
    END IF;
    IF _id IS NULL THEN
        INSERT INTO {quote(CONTEXT_TABLE)} (created_at, user_id, metadata)
        SELECT {_CONTEXT_ROW}
        RETURNING id INTO _id;
    END IF;
    PERFORM set_config({literal(_SEEN_GUC)}, _raw, true),
            set_config({literal(_SEEN_ID_GUC)}, _id::text, true);
    RETURN _id;
END;
$$;
"""
# Migrations reference a numbered version; this name always points at the newest.
CONTEXT_FUNCTION_SQL = CONTEXT_FUNCTION_SQL_V2

DROP_CONTEXT_FUNCTION_SQL = f"DROP FUNCTION IF EXISTS {CONTEXT_FUNCTION}();"


def set_config_sql(values: Sequence[tuple[str, str]]) -> str:
    """A SELECT that sets transaction-local settings to values given as SQL (literals
    or placeholders)."""
    calls = ", ".join(f"set_config({literal(name)}, {value}, true)" for name, value in values)
    return f"SELECT {calls}"


class AuditTriggerSql(UpsertTriggerSql):
    """Installation SQL of our triggers, version 1.

    pgtrigger's stock template wraps every trigger in a check of the ``pgtrigger.ignore``
    session setting, read inside an exception block. That lets any session switch
    capture off, and its caught error per row makes bulk inserts quadratic. Ours has
    neither; the only way around capture is ``audit_app.disable_tracking()``, which the
    triggers themselves record.
    """

    def __init__(self, *, settings: str = "", **kwargs: Any) -> None:
        # Function-level settings (``SET name = value ...``), e.g. JOIN_PLAN_SETTINGS.
        # Optional, so SQL without them is unchanged and keeps its hash.
        self.settings = settings
        super().__init__(**kwargs)
        if settings:
            self.kwargs["settings"] = settings

    def get_template(self) -> str:
        settings = f" {self.settings}" if self.settings else ""
        return (
            """
            CREATE OR REPLACE FUNCTION {pgid}()
            RETURNS TRIGGER AS $$
                {declare}
                BEGIN
                    {func}
                END;
            $$ LANGUAGE plpgsql"""
            + settings
            + """;

            DROP TRIGGER IF EXISTS {pgid} ON {table};
            CREATE {constraint} TRIGGER {pgid}
                {when} {operation} ON {table}
                {timing}
                {referencing}
                FOR EACH {level} {condition}
                EXECUTE PROCEDURE {execute};

            COMMENT ON TRIGGER {pgid} ON {table} IS '{hash}';
        """
        )
