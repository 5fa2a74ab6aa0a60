"""pgtrigger glue: our trigger classes, compiled with our own installation template."""

from __future__ import annotations

from typing import Any

import pgtrigger
from pgtrigger import compiler

from audit_app import sql


class AuditTrigger(pgtrigger.Trigger):
    """A pgtrigger trigger installed without pgtrigger's session-switchable ignore check."""

    def compile(self, model: Any) -> compiler.Trigger:
        return compiler.Trigger(
            name=self.name,
            sql=sql.AuditTriggerSql(
                pgid=self.get_pgid(model),
                declare=self.render_declare(model),
                func=self.render_func(model),
                table=model._meta.db_table,
                constraint="CONSTRAINT" if self.timing else "",
                when=self.when,
                operation=self.operation,
                timing=f"DEFERRABLE INITIALLY {self.timing}" if self.timing else "",
                referencing=self.referencing or "",
                level=self.level,
                condition=self.render_condition(model),
                execute=self.render_execute(model),
                settings=self.get_function_settings(model),
            ),
        )

    def get_function_settings(self, model: Any) -> str:
        """``SET`` clauses of the trigger function; none by default."""
        return ""


class AppendOnly(AuditTrigger):
    """Refuse UPDATE and DELETE (and TRUNCATE unless told otherwise) on a table."""

    when = pgtrigger.Before
    level = pgtrigger.Statement

    def __init__(self, name: str = "audit_append_only", *, truncate: bool = True) -> None:
        operation = pgtrigger.Update | pgtrigger.Delete
        super().__init__(
            name=name, operation=operation | pgtrigger.Truncate if truncate else operation
        )

    def get_func(self, model: Any) -> str:
        return sql.append_only_body(model._meta.db_table)


_OPERATIONS = {"INSERT": pgtrigger.Insert, "UPDATE": pgtrigger.Update, "DELETE": pgtrigger.Delete}


class CaptureTrigger(AuditTrigger):
    """Write one event row per changed row, at row or statement level."""

    when = pgtrigger.After

    def __init__(
        self,
        *,
        name: str,
        spec: sql.EventSpec,
        label: str,
        operation: str,
        row: str,
        level: str,
        condition_sql: str = "",
    ) -> None:
        self.spec = spec
        self.label = label
        self.row = row
        self.condition_sql = condition_sql
        referencing = None
        if level == "STATEMENT":
            needs_old = operation == "DELETE" or sql.joins_old_rows(operation, condition_sql)
            referencing = pgtrigger.Referencing(
                old=sql.OLD_TABLE if needs_old else None,
                new=sql.NEW_TABLE if operation != "DELETE" else None,
            )
        super().__init__(
            name=name,
            operation=_OPERATIONS[operation],
            level=pgtrigger.Statement if level == "STATEMENT" else pgtrigger.Row,
            referencing=referencing,
        )

    def render_condition(self, model: Any) -> str:
        # Statement-level triggers filter rows in their body instead.
        if self.level == pgtrigger.Row and self.condition_sql:
            return f"WHEN ({self.condition_sql})"
        return ""

    def get_function_settings(self, model: Any) -> str:
        if self.level == pgtrigger.Statement and sql.joins_old_rows(
            str(self.operation), self.condition_sql
        ):
            return sql.JOIN_PLAN_SETTINGS
        return ""

    def get_func(self, model: Any) -> str:
        if self.level == pgtrigger.Statement:
            return sql.statement_trigger_body(
                self.spec,
                label=self.label,
                operation=str(self.operation),
                row=self.row,
                condition_sql=self.condition_sql,
            )
        return sql.row_trigger_body(self.spec, label=self.label, row=self.row)
