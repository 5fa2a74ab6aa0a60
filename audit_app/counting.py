"""Row counts that are exact where counting is cheap, the planner's estimate elsewhere.

A bounded count, ``SELECT count(*) FROM (<query> LIMIT n + 1)``, is exact when it
returns at most ``n`` (``AUDIT_EXACT_COUNT_LIMIT``) and returns no more than ``n + 1``
rows. It runs when the planner expects at most ``n`` rows, leaving out the rows it
invents for tables never analyzed (ten pages of rows in each: 1,580 for 40 events),
and expects the count to be cheap: a selective filter on an unindexed column scans
the whole table however few rows it returns, and is left to the estimate. Otherwise
only an EXPLAIN and a catalog lookup run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connections

from audit_app import conf, sql

# The most a bounded count may cost, in planner cost units per row of the limit (never
# below COUNT_COST_FLOOR). Measured on 1M events: 10,001 events read off one table cost
# ~210 (1 ms); the 999 deletes among them, found by a scan of the table, ~18,000 (50 ms).
COUNT_COST_PER_ROW = 0.5
COUNT_COST_FLOOR = 5_000.0


@dataclass(frozen=True)
class RowCount:
    """How many rows, and whether that is a count (``exact``) or an estimate."""

    value: int
    exact: bool

    def __str__(self) -> str:
        return str(self.value) if self.exact else f"~{self.value}"


def _plan(cursor: Any, statement: str, params: tuple[Any, ...]) -> dict[str, Any]:
    cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", params)
    plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _estimate(plan: dict[str, Any], limit: int) -> tuple[int, float]:
    """(rows the query returns, cost of reading ``limit`` of them), as the planner sees
    them: the cost of a LIMIT is the startup cost plus its share of the rest."""
    rows, startup, total = int(plan["Plan Rows"]), plan["Startup Cost"], plan["Total Cost"]
    share = min(1.0, limit / rows) if rows else 1.0
    return rows, startup + (total - startup) * share


def _rows_from(plan: dict[str, Any], tables: set[str]) -> int:
    """Rows the plan expects to read from ``tables`` (outside subqueries run per row)."""
    own = int(plan["Plan Rows"]) if plan.get("Relation Name") in tables else 0
    return own + sum(
        _rows_from(child, tables)
        for child in plan.get("Plans", ())
        if child.get("Parent Relationship") not in ("SubPlan", "InitPlan")
    )


def tables_without_statistics(cursor: Any, tables: Iterable[str]) -> set[str]:
    """Those of ``tables`` that no VACUUM or ANALYZE has counted yet.

    Their ``reltuples`` is -1, and the planner assumes at least ten pages of rows in
    each (a table no one writes to is never analyzed by autovacuum).
    """
    cursor.execute(
        "SELECT c.relname FROM unnest(%s::text[]) AS t(name) "
        "JOIN pg_class AS c ON c.oid = to_regclass(t.name) WHERE c.reltuples < 0",
        [[sql.quote(table) for table in tables]],
    )
    return {name for (name,) in cursor.fetchall()}


def count_rows(
    statement: str, params: tuple[Any, ...], *, tables: Iterable[str], using: str = "default"
) -> RowCount:
    """Count the rows of ``statement`` exactly if that is cheap, else estimate them.

    ``statement`` must not be limited (it gets a ``LIMIT``) and may start with ``WITH``;
    ``tables`` are the tables it reads whose statistics the estimate relies on.
    """
    limit = conf.exact_count_limit()
    bounded = f"SELECT count(*) FROM ({statement} LIMIT {limit + 1}) AS bounded"
    with connections[using].cursor() as cursor:
        # The statement's own plan: its rows are the estimate, and the cost of a LIMIT
        # follows from its costs.
        plan = _plan(cursor, statement, params)
        estimate, cost = _estimate(plan, limit + 1)
        if limit <= 0 or cost > max(COUNT_COST_PER_ROW * limit, COUNT_COST_FLOOR):
            return RowCount(estimate, exact=False)
        # Rows the planner invented for tables without statistics do not make a count
        # large: only the rows of the other tables can.
        if estimate > limit and (
            estimate - _rows_from(plan, tables_without_statistics(cursor, tables)) > limit
        ):
            return RowCount(estimate, exact=False)
        cursor.execute(bounded, params)
        counted = cursor.fetchone()[0]
    if counted <= limit:
        return RowCount(counted, exact=True)
    return RowCount(max(estimate, counted), exact=False)
