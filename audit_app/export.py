"""Export events as flat rows, CSV or JSON Lines, streamed in constant memory.

The rows are computed by PostgreSQL in one query (diff included) and, for CSV and
JSON Lines, formatted by ``COPY ... TO STDOUT`` as well: Python only passes chunks
of bytes along. Cells that a spreadsheet would run as a formula are neutralised in
the same SQL.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

from django.db import connections, models
from django.db.models.expressions import RawSQL

from audit_app import sql
from audit_app.query import AGGREGATE_TABLE, MASKED
from audit_app.tracking import tracked_models

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
# A spreadsheet runs a cell starting with one of these (after blanks) as a formula;
# tab and carriage return at the start are dangerous on their own.
_FORMULA_RE = re.compile(r"^(\s*[=+\-@]|[\t\r])")
_FORMULA_SQL = r"'^([[:space:]]*[-=+@]|[\t\r])'"
CHUNK_ROWS = 2_000
_ORDERABLE = ("created_at", "event_id", "event_model", "obj_model", "obj_id", "label")


def guard(value: Any) -> Any:
    """Neutralise a cell a spreadsheet would run as a formula (prefix a quote)."""
    if isinstance(value, str) and _FORMULA_RE.match(value):
        return "'" + value
    return value


def _guard_sql(expression: str) -> str:
    return (
        f"(CASE WHEN {expression} ~ {_FORMULA_SQL} THEN '''' || {expression} ELSE {expression} END)"
    )


def _object_label_sql() -> str:
    cases = " ".join(
        f"WHEN {sql.literal(m._meta.label)} THEN {sql.literal(str(m._meta.verbose_name) + ' ')}"
        for m in tracked_models()
    )
    return f"(CASE ev.obj_model {cases} ELSE '' END || ev.obj_id)" if cases else "ev.obj_id"


_ACTION_SQL = (
    "(CASE WHEN c.metadata->>'audit_action' IN ('reverted', 'restored') "
    "AND ev.label IN ('insert', 'update') THEN c.metadata->>'audit_action' "
    "WHEN ev.label = 'insert' THEN 'created' WHEN ev.label = 'update' THEN 'changed' "
    "WHEN ev.label = 'delete' THEN 'deleted' ELSE ev.label END)"
)


def rows_sql(queryset: models.QuerySet) -> tuple[str, tuple[Any, ...]]:
    """SQL returning one text row per event of ``queryset``, in ``COLUMNS`` order."""
    inner = queryset.without_diffs()
    inner.query.audit_previous = True
    inner = inner.annotate(
        # A column of our own CTE, not user input.
        prev_data=RawSQL(f'{sql.quote(AGGREGATE_TABLE)}."prev_data"', ())  # noqa: S611
    ).values(*_ORDERABLE, "context_id", "data", "masked_markers", "prev_data")
    inner_sql, params = inner.query.get_compiler(using=inner.db).as_sql()
    # The joins below may reorder rows: repeat the queryset's ordering outside.
    ordering = []
    for term in queryset.query.order_by or queryset.model._meta.ordering:
        name = term.lstrip("-")
        if name not in _ORDERABLE:
            raise ValueError(f"Exports can be ordered by {_ORDERABLE}, not {name!r}.")
        ordering.append(f"ev.{name} {'DESC' if term.startswith('-') else 'ASC'}")
    current = "(ev.data || coalesce(ev.masked_markers, '{}'::jsonb))"
    masked = sql.literal(MASKED)
    cells = [
        """to_char(ev.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
        "ev.obj_model",
        "ev.obj_id",
        _object_label_sql(),
        _ACTION_SQL,
        "coalesce(c.metadata->>'username', '')",
        "coalesce(c.metadata->>'request_id', '')",
        "coalesce(c.metadata->>'url', '')",
        "coalesce(d.fields, '')",
        "coalesce(d.diff::text, '')",
    ]
    select = ", ".join(
        f"{_guard_sql(cell)} AS {name}" for cell, name in zip(cells, COLUMNS, strict=True)
    )
    statement = (
        f"SELECT {select} FROM ({inner_sql}) AS ev "
        f"LEFT JOIN {sql.quote(sql.CONTEXT_TABLE)} AS c ON c.id = ev.context_id "
        "LEFT JOIN LATERAL ("
        "SELECT string_agg(k, ' ' ORDER BY k) AS fields, jsonb_object_agg(k, "
        f"CASE WHEN ev.masked_markers ? k THEN jsonb_build_array({masked}, {masked}) "
        "ELSE jsonb_build_array(ev.prev_data -> k, v) END) AS diff "
        f"FROM jsonb_each({current}) AS cur(k, v) "
        "WHERE ev.prev_data IS NOT NULL AND ev.prev_data -> k IS DISTINCT FROM v"
        ") AS d ON TRUE"
        f" ORDER BY {', '.join(ordering)}"
    )
    return statement, tuple(params)


def rows(queryset: models.QuerySet, *, chunk_size: int = CHUNK_ROWS) -> Iterator[tuple[str, ...]]:
    """Yield export rows (tuples of text) through a server-side cursor, in chunks."""
    statement, params = rows_sql(queryset)
    with connections[queryset.db].chunked_cursor() as cursor:
        cursor.execute(statement, params)
        while chunk := cursor.fetchmany(chunk_size):
            yield from chunk


def _copy(statement: str, params: tuple[Any, ...], options: str, using: str) -> Iterator[bytes]:
    with connections[using].cursor() as cursor:
        with cursor.cursor.copy(f"COPY ({statement}) TO STDOUT WITH ({options})", params) as copy:
            yield from (bytes(chunk) for chunk in copy)


def stream_csv(queryset: models.QuerySet, *, header: bool = True) -> Iterator[bytes]:
    """Yield the export as UTF-8 CSV, a chunk at a time, formatted by PostgreSQL."""
    if header:
        yield (",".join(COLUMNS) + "\n").encode()
    statement, params = rows_sql(queryset)
    yield from _copy(statement, params, "FORMAT csv, ENCODING 'UTF8', FORCE_QUOTE *", queryset.db)


def stream_jsonl(queryset: models.QuerySet) -> Iterator[bytes]:
    """Yield the export as JSON Lines (one object per event)."""
    statement, params = rows_sql(queryset)
    names = ", ".join(f"{sql.literal(n)}, r.{n}" for n in COLUMNS)
    jsonl = f"SELECT json_build_object({names})::text FROM ({statement}) AS r"
    # CSV format with quote and delimiter characters that JSON text never contains
    # raw: COPY passes every line through untouched (text format would double "\\").
    options = "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02', ENCODING 'UTF8'"
    yield from _copy(jsonl, params, options, queryset.db)


def write_csv(rows_iter: Iterator[tuple[Any, ...]], out: io.TextIOBase) -> None:
    """Write rows with Python's csv module, guarding every cell (for custom row sources)."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows_iter:
        writer.writerow([guard(v) for v in row])
