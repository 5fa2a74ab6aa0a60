"""Export events as flat rows, CSV or JSON Lines, streamed in constant memory.

The rows are computed by PostgreSQL in one query (diff included) and, for CSV and
JSON Lines, formatted by ``COPY ... TO STDOUT`` as well: Python only passes chunks
of bytes along. Cells that a spreadsheet would run as a formula are neutralised in
the same SQL.

The diff is generated per event table from its column list: each event row is joined
to its object's previous row (one probe of the object index) and the two are compared
column by column, not as two jsonb images key by key.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

from django.db import connections, models
from django.db.models.expressions import RawSQL
from django.db.models.sql import Query

from audit_app import sql
from audit_app.column_history import field_values
from audit_app.event_sql import (
    AGGREGATE_TABLE,
    MASKED,
    previous_event_sql,
    tracked_field,
    union_sql,
)
from audit_app.registry import tracked_models

COLUMNS = (
    "time",
    "model",
    "object_id",
    "object",
    "action",
    "user",
    "request_id",
    "url",
    "changed_fields",
    "diff",
)
# JSON Lines: the same keys, then the event's data and its context's metadata.
JSONL_KEYS = (*COLUMNS, "data", "context")
# A spreadsheet runs a cell starting with one of these (after blanks) as a formula;
# tab and carriage return at the start are dangerous on their own.
_FORMULA_RE = re.compile(r"^(\s*[=+\-@]|[\t\r])")
_FORMULA_SQL = r"'^([[:space:]]*[-=+@]|[\t\r])'"
CHUNK_ROWS = 2_000
CHUNK_BYTES = 64 * 1024
_ORDERABLE = ("created_at", "event_id", "event_model", "obj_model", "obj_id", "label")
# The columns our union branches add to AuditEvent's (see _events_sql).
_DIFF = "export_diff"
_DATA = "export_data"
_MAX_ARGS = 50  # SQL functions take at most 100 arguments


def guard(value: Any) -> Any:
    """Neutralise a cell a spreadsheet would run as a formula (prefix a quote)."""
    if isinstance(value, str) and _FORMULA_RE.match(value):
        return "'" + value
    return value


def _guard_sql(expression: str) -> str:
    # One evaluation of the value (CASE WHEN x ~ ... THEN '''' || x ELSE x would be two).
    return rf"regexp_replace({expression}, {_FORMULA_SQL}, '''\1')"


def _object_label_sql(obj_id: str, *, guarded: bool = True) -> str:
    """The object's label, "<verbose name> <key>"; ``obj_id`` is the key's SQL."""
    cases = []
    for model in tracked_models():
        prefix = str(model._meta.verbose_name) + " "
        label = f"{sql.literal(prefix)} || ev.obj_id"
        # After a letter or digit no formula can start, whatever the key: no guard.
        cases.append(
            f"WHEN {sql.literal(model._meta.label)} THEN "
            + (label if prefix[0].isalnum() or not guarded else _guard_sql(label))
        )
    if not cases:
        return obj_id
    return f"(CASE ev.obj_model {' '.join(cases)} ELSE {obj_id} END)"


def _action_sql(label: str) -> str:
    """The action of an event (``c`` its context's columns); ``label`` for custom labels."""
    return (
        "(CASE WHEN c.audit_action IN ('reverted', 'restored') "
        "AND ev.label IN ('insert', 'update') THEN c.audit_action "
        "WHEN ev.label = 'insert' THEN 'created' WHEN ev.label = 'update' THEN 'changed' "
        f"WHEN ev.label = 'delete' THEN 'deleted' ELSE {label} END)"
    )


# Other labels come from code, but may start with "-" (and SQL could write anything).
_ACTION_SQL = _action_sql(_guard_sql("ev.label"))
# The context's cells come from a subquery per context row, which PostgreSQL caches
# per context id (Memoize): consecutive events mostly share a context. OFFSET 0 keeps
# the subquery from being merged into the outer query, which would then read and
# guard the metadata again for every event.
_CONTEXT_SQL = (
    "LEFT JOIN LATERAL (SELECT "
    + ", ".join(
        _guard_sql(f"coalesce(c.metadata->>{sql.literal(key)}, '')") + f" AS {key}"
        for key in ("username", "request_id", "url")
    )
    + ", c.metadata->>'audit_action' AS audit_action "
    + f"FROM {sql.quote(sql.CONTEXT_TABLE)} AS c WHERE c.id = ev.context_id OFFSET 0) AS c ON TRUE"
)
# The same for JSON Lines: values as JSON text, unguarded, and the whole metadata.
_JSONL_CONTEXT_SQL = (
    "LEFT JOIN LATERAL (SELECT "
    + ", ".join(
        f"(c.metadata->{sql.literal(key)})::text AS {key}"
        for key in ("username", "request_id", "url")
    )
    + ", c.metadata->>'audit_action' AS audit_action, c.metadata::text AS metadata "
    + f"FROM {sql.quote(sql.CONTEXT_TABLE)} AS c WHERE c.id = ev.context_id OFFSET 0) AS c ON TRUE"
)


def _concat_ws(separator: str, parts: list[str]) -> str:
    """``concat_ws`` of any number of parts: NULL parts are skipped, as concat_ws does."""
    if len(parts) <= _MAX_ARGS:
        return f"concat_ws({separator}, {', '.join(parts)})"
    chunks = [parts[i : i + _MAX_ARGS] for i in range(0, len(parts), _MAX_ARGS)]
    return _concat_ws(separator, [f"nullif({_concat_ws(separator, c)}, '')" for c in chunks])


def _jsonb_key_order(name: str) -> tuple[int, bytes]:
    # jsonb stores object keys shortest first, then bytewise; its text shows that order.
    encoded = name.encode()
    return len(encoded), encoded


# Database types whose text form is their JSON text as jsonb writes it, and types
# that to_json() writes as jsonb does: both skip building a jsonb value per cell.
_JSON_AS_TEXT = frozenset({"integer", "bigint", "smallint", "boolean", "jsonb"})
_JSON_TO_JSON = re.compile(r"text|varchar\(\d+\)|uuid|date|timestamp with time zone")


def _json_sql(field: models.Field, value: str, connection: Any) -> str | None:
    """SQL for the JSON text of a column value, or None: use jsonb_build_array."""
    if isinstance(field, models.DecimalField):
        # As AuditEvent.data has them: strings (jsonb numbers would read back as floats).
        return f"coalesce('\"' || {value}::text || '\"', 'null')"
    db_type = field.db_type(connection)
    if db_type in _JSON_AS_TEXT:
        return f"coalesce({value}::text, 'null')"
    if db_type and _JSON_TO_JSON.fullmatch(db_type):
        return f"coalesce(to_json({value})::text, 'null')"
    return None


def _diff_sql(event_model: type[models.Model], connection: Any, *, as_json: bool = False) -> str:
    """A scalar subquery: ``ARRAY[changed field names, diff]`` of an event of this table.

    It reads the object's previous event (``LIMIT 1`` on the object index) and compares
    it with the current one by one ``IS DISTINCT FROM`` per tracked column. The diff is
    the text of the jsonb object ``{field: [old, new]}`` (keys in jsonb's order, values
    as jsonb writes them), put together as text: ``jsonb_strip_nulls`` would strip
    nulls inside JSON values too. Masked fields compare their change markers and show
    ``MASKED`` for both values. NULL for an object's first event.

    The names are space-separated, and the diff NULL when no field changed; with
    ``as_json`` the names are a JSON array and an unchanged event's diff is ``{}``.

    A subquery in the select list, not a join: a union branch that joins is no longer a
    plain scan of its table, and PostgreSQL would sort the union instead of merging the
    branches' index scans.
    """
    spec = event_model.audit_spec
    # The previous row is found by the key: the key column never differs.
    compared = [v for v in field_values(event_model) if v.segments[-1].column != spec.pk_column]
    changed = {
        v.name: f"{v.value_sql('prev')} IS DISTINCT FROM {v.value_sql('e')}" for v in compared
    }
    names = [
        f"CASE WHEN {changed[v.name]} THEN "
        f"{sql.literal(json.dumps(v.name, ensure_ascii=False) if as_json else v.name)} END"
        for v in sorted(compared, key=lambda v: v.name)
    ]
    pairs = []
    for values in sorted(compared, key=lambda v: _jsonb_key_order(v.name)):
        key = json.dumps(values.name, ensure_ascii=False) + ": "
        old, new = values.value_sql("prev"), values.value_sql("e")
        if values.masked:
            pair = sql.literal(key + json.dumps([MASKED, MASKED], ensure_ascii=False))
        elif values.plain and (
            old_json := _json_sql(event_model._meta.get_field(values.name), old, connection)
        ):
            new_json = _json_sql(event_model._meta.get_field(values.name), new, connection)
            pair = f"{sql.literal(key + '[')} || {old_json} || ', ' || {new_json} || ']'"
        else:
            pair = f"{sql.literal(key)} || jsonb_build_array({old}, {new})::text"
        pairs.append(f"CASE WHEN {changed[values.name]} THEN {pair} END")
    if as_json:
        fields = f"'[' || {_concat_ws(sql.literal(', '), names)} || ']'"
        diff = f"'{{' || {_concat_ws(sql.literal(', '), pairs)} || '}}'"
    else:
        fields = _concat_ws(sql.literal(" "), names)
        diff = f"'{{' || nullif({_concat_ws(sql.literal(', '), pairs)}, '') || '}}'"
    return previous_event_sql(event_model, f"ARRAY[{fields}, {diff}]", alias="prev")


def _data_sql(event_model: type[models.Model], connection: Any) -> str:
    """The JSON text of an event's data (alias ``e``), as ``AuditEvent.data`` has it.

    Put together as text like the diff: building a jsonb value per event and writing it
    out again cost more than the rest of a JSON Lines export. Masked fields read
    ``MASKED``, as in ``event_sql.data_sql``.
    """
    pairs = []
    for values in sorted(field_values(event_model), key=lambda v: _jsonb_key_order(v.name)):
        value = values.value_sql("e")
        if values.masked:
            masked = sql.literal(json.dumps(MASKED, ensure_ascii=False))
            value_json = f"CASE WHEN {value} IS NULL THEN 'null' ELSE {masked} END"
        elif values.plain:
            field = tracked_field(event_model, values.name)
            value_json = _json_sql(field, value, connection) or (
                f"coalesce(to_jsonb({value})::text, 'null')"
            )
        else:
            value_json = f"coalesce(({value})::text, 'null')"
        pair = f"{sql.literal(json.dumps(values.name, ensure_ascii=False) + ': ')} || {value_json}"
        present = values.present_sql("e")
        # concat_ws skips NULL: a field the event did not record is left out.
        pairs.append(pair if present is None else f"CASE WHEN {present} THEN {pair} END")
    return f"'{{' || {_concat_ws(sql.literal(', '), pairs)} || '}}'"


def _events_sql(
    queryset: models.QuerySet, *, diff: bool, as_json: bool = False
) -> tuple[str, tuple[Any, ...], bool]:
    """The queryset's events (keys, context, the diff if asked), and whether they have
    the extra columns (none without an event table in scope).

    ``as_json`` adds the data's JSON text and writes the diff as JSON (``_diff_sql``).
    """
    inner = queryset.without_diffs()
    connection = connections[inner.db]
    extra = [(_DIFF, _diff_sql, {"as_json": as_json})] if diff else []
    if as_json:
        extra.append((_DATA, _data_sql, {}))

    def extra_columns(event_model: type[models.Model]) -> str:
        return "".join(f", {build(event_model, connection, **kw)} AS {n}" for n, build, kw in extra)

    union = union_sql(inner.query.audit_scope, extra_columns=extra_columns) if extra else None
    columns = (*_ORDERABLE, "context_id")
    if union is None:
        inner = inner.values(*columns)
        statement, params = inner.query.get_compiler(using=inner.db).as_sql()
    else:
        inner = inner.annotate(
            # The columns of our own union (below), not user input.
            **{
                name: RawSQL(f"{sql.quote(AGGREGATE_TABLE)}.{sql.quote(name)}", ())  # noqa: S611
                for name, _, _ in extra
            }
        ).values(*columns, *(name for name, _, _ in extra))
        # Django's own compiler, not AuditEventQuery's: the CTE is ours, with the diff.
        statement, params = Query.get_compiler(inner.query, using=inner.db).as_sql()
        union_text, union_params = union
        statement = f"WITH {sql.quote(AGGREGATE_TABLE)} AS ({union_text}) {statement}"
        params = (*union_params, *params)
    if not inner.query.is_sliced:
        # A fence (a slice is one already): planned on its own, the events' subquery
        # is not merged into the export's query, where each of the two reads of the
        # diff column could become a run of the previous-version subquery.
        statement += " OFFSET 0"
    return statement, tuple(params), union is not None


def _ordering_sql(queryset: models.QuerySet) -> str:
    # The join with the context may reorder rows: repeat the queryset's ordering outside.
    ordering = []
    for term in queryset.query.order_by or queryset.model._meta.ordering:
        name = term.lstrip("-")
        if name not in _ORDERABLE:
            raise ValueError(f"Exports can be ordered by {_ORDERABLE}, not {name!r}.")
        ordering.append(f"ev.{name} {'DESC' if term.startswith('-') else 'ASC'}")
    return ", ".join(ordering)


_TIME_SQL = """to_char(ev.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def rows_sql(queryset: models.QuerySet, *, diff: bool = True) -> tuple[str, tuple[Any, ...]]:
    """SQL returning one text row per event of ``queryset``, in ``COLUMNS`` order.

    With ``diff=False`` the ``changed_fields`` and ``diff`` cells are empty and no
    event's previous version is looked up, which is most of the cost of an export.
    """
    events, params, extended = _events_sql(queryset, diff=diff)
    diffed = diff and extended
    ordering = _ordering_sql(queryset)
    # Only cells that can hold user text are guarded (and custom labels): the time,
    # model label, actions, field names and the diff (it starts with "{") cannot start
    # a formula.
    obj_id = _guard_sql("ev.obj_id")
    cells = [
        _TIME_SQL,
        "ev.obj_model",
        obj_id,
        _object_label_sql(obj_id),
        _ACTION_SQL,
        "coalesce(c.username, '')",
        "coalesce(c.request_id, '')",
        "coalesce(c.url, '')",
        f"coalesce(ev.{_DIFF}[1], '')" if diffed else "''",
        f"coalesce(ev.{_DIFF}[2], '')" if diffed else "''",
    ]
    select = ", ".join(f"{cell} AS {name}" for cell, name in zip(cells, COLUMNS, strict=True))
    statement = f"SELECT {select} FROM ({events}) AS ev {_CONTEXT_SQL} ORDER BY {ordering}"
    return statement, params


def rows(
    queryset: models.QuerySet, *, diff: bool = True, chunk_size: int = CHUNK_ROWS
) -> Iterator[tuple[str, ...]]:
    """Yield export rows (tuples of text) through a server-side cursor, in chunks."""
    statement, params = rows_sql(queryset, diff=diff)
    with connections[queryset.db].chunked_cursor() as cursor:
        cursor.execute(statement, params)
        while chunk := cursor.fetchmany(chunk_size):
            yield from chunk


def _copy(statement: str, params: tuple[Any, ...], options: str, using: str) -> Iterator[bytes]:
    # COPY sends a message per row: hand on chunks of CHUNK_BYTES instead, so that a
    # response or file gets a few thousand writes per 100 MiB, not a million.
    with connections[using].cursor() as cursor:
        with cursor.cursor.copy(f"COPY ({statement}) TO STDOUT WITH ({options})", params) as copy:
            buffer = bytearray()
            for row in copy:
                buffer += row
                if len(buffer) >= CHUNK_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
            if buffer:
                yield bytes(buffer)


def stream_csv(
    queryset: models.QuerySet, *, header: bool = True, diff: bool = True
) -> Iterator[bytes]:
    """Yield the export as UTF-8 CSV, a chunk at a time, formatted by PostgreSQL."""
    if header:
        yield (",".join(COLUMNS) + "\n").encode()
    statement, params = rows_sql(queryset, diff=diff)
    yield from _copy(statement, params, "FORMAT csv, ENCODING 'UTF8', FORCE_QUOTE *", queryset.db)


def _json_text(expression: str) -> str:
    return f"coalesce(to_json({expression})::text, 'null')"


def jsonl_sql(queryset: models.QuerySet, *, diff: bool = True) -> tuple[str, tuple[Any, ...]]:
    """SQL returning one JSON object per event of ``queryset``, as text, keyed by
    ``JSONL_KEYS``.

    Values are JSON values, not text cells: ``changed_fields`` an array, ``diff`` an
    object (null for an object's first event and with ``diff=False``), ``data`` and
    ``context`` objects. No formula guard: JSON strings carry the values as they are.
    """
    events, params, extended = _events_sql(queryset, diff=diff, as_json=True)
    diffed = diff and extended
    values = {
        # The time has nothing to escape.
        "time": f"'\"' || {_TIME_SQL} || '\"'",
        "model": _json_text("ev.obj_model"),
        "object_id": _json_text("ev.obj_id"),
        "object": _json_text(_object_label_sql("ev.obj_id", guarded=False)),
        "action": _json_text(_action_sql("ev.label")),
        "user": "coalesce(c.username, 'null')",
        "request_id": "coalesce(c.request_id, 'null')",
        "url": "coalesce(c.url, 'null')",
        "changed_fields": f"coalesce(ev.{_DIFF}[1], 'null')" if diffed else "'null'",
        "diff": f"coalesce(ev.{_DIFF}[2], 'null')" if diffed else "'null'",
        "data": f"ev.{_DATA}" if extended else "'null'",
        "context": "coalesce(c.metadata, 'null')",
    }
    parts = [
        sql.literal(("{" if i == 0 else ", ") + json.dumps(key) + ": ") + f", {value}"
        for i, (key, value) in enumerate(values.items())
    ]
    # One concat() per line: its arguments are text already, and a line is one string.
    statement = (
        f"SELECT concat({', '.join(parts)}, '}}') FROM ({events}) AS ev {_JSONL_CONTEXT_SQL} "
        f"ORDER BY {_ordering_sql(queryset)}"
    )
    return statement, params


def stream_jsonl(queryset: models.QuerySet, *, diff: bool = True) -> Iterator[bytes]:
    """Yield the export as JSON Lines (one object per event, see ``jsonl_sql``)."""
    statement, params = jsonl_sql(queryset, diff=diff)
    # CSV format with quote and delimiter characters that JSON text never contains
    # raw: COPY passes every line through untouched (text format would double "\\").
    options = "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02', ENCODING 'UTF8'"
    yield from _copy(statement, params, options, queryset.db)


def write_csv(rows_iter: Iterator[tuple[Any, ...]], out: io.TextIOBase) -> None:
    """Write rows with Python's csv module, guarding every cell (for custom row sources)."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows_iter:
        writer.writerow([guard(v) for v in row])
