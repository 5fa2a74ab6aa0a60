"""The base of our django-tables2 tables: rows rendered in one pass."""

from __future__ import annotations

from typing import Any

import django_tables2 as tables
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


class AuditTable(tables.Table):
    """Our tables' base: each row is rendered in one pass by the table's render methods.

    django-tables2 renders a cell by resolving the column's accessor, inspecting the
    render method's signature and recomputing the column's attributes; on a page of 50
    rows that cost as much as the cells themselves. Here a column with a table method
    ``render_<column>(record)`` is rendered by calling it directly (the accessor and
    ``empty_values`` are not consulted), and each column's ``<td>`` attributes are
    computed once per page. Other columns render the usual django-tables2 way.
    """

    def get_column_class_names(self, classes_set: set[str], bound_column: Any) -> set[str]:
        # Per-column classes for the stylesheet (positions change with the actions).
        classes = super().get_column_class_names(classes_set, bound_column)
        classes.add(f"audit-col-{bound_column.name}")
        return classes

    def html_rows(self) -> list[SafeString]:
        """The ``<tr>`` of every row of the page, in order."""
        columns = [
            (
                column.attrs["td"].as_html(),
                column.name,
                getattr(self, f"render_{column.name}", None),
            )
            for column in self.columns
        ]
        rows = []
        for row in self.paginated_rows:
            record = row.record
            cells = format_html_join(
                "",
                "<td {}>{}</td>",
                (
                    (td, render(record=record) if render else row.get_cell(name))
                    for td, name, render in columns
                ),
            )
            rows.append(format_html("<tr {}>{}</tr>", row.attrs.as_html(), cells))
        return rows
