"""``manage.py audit partitions`` and ``manage.py audit partition`` (docs/scaling.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from audit_app import partition_sql as psql
from audit_app import partitioning, sql
from audit_app.counting import count_rows
from audit_app.exceptions import PartitionError
from audit_app.registry import tracked_models


def add_parsers(sub: Any) -> None:
    lister = sub.add_parser(
        "partitions",
        help="Create partitions ahead, move strays out of the safety net, list partitions.",
    )
    lister.add_argument("--model", action="append", default=[], metavar="app_label.Model")
    lister.add_argument(
        "--ahead", type=int, default=2, help="intervals to prepare after the current one (2)"
    )
    converter = sub.add_parser(
        "partition", help="Partition a model's event table by time, history and all."
    )
    converter.add_argument("model", metavar="app_label.Model")
    converter.add_argument("--by", required=True, choices=psql.INTERVALS, dest="interval")


def _size(size: int) -> str:
    return f"{size / 1048576:.1f} MiB"


def _range(partition: partitioning.Partition) -> str:
    if partition.default:
        return "safety net (any time without a partition)"
    lower = f"{partition.lower:%Y-%m-%d}" if partition.lower else "the beginning"
    upper = f"{partition.upper:%Y-%m-%d}" if partition.upper else "the end"
    return f"{lower} to {upper}"


def describe(table: str, using: str) -> list[str]:
    """One line per partition of ``table``: name, range, rows (estimated) and size."""
    lines = []
    for partition in partitioning.partitions(table, using):
        # Counted where that is cheap (AUDIT_EXACT_COUNT_LIMIT), else the estimate.
        found = count_rows(
            f"SELECT 1 FROM {sql.quote(partition.name)}", (), tables=[partition.name], using=using
        )
        rows = f"{found.value:,}" if found.exact else f"~{found.value:,}"
        lines.append(
            f"    {partition.name}: {_range(partition)}, {rows} rows, {_size(partition.size)}"
        )
    return lines


def handle_partitions(command: Any, *, database: str, models: list[Any], ahead: int) -> None:
    if ahead < 0:
        raise CommandError(f"--ahead must be 0 or more, not {ahead}.")
    chosen = models or tracked_models()
    found = False
    for model in chosen:
        table = model.audit_event_model._meta.db_table
        interval = partitioning.interval_of(table, database)
        if interval is None:
            if models:
                raise CommandError(
                    f"The events of {model._meta.label} are not partitioned; partition them with "
                    f"`manage.py audit partition {model._meta.label} --by month` (or week, day)."
                )
            continue
        found = True
        partitioning.ensure_partitions(table, using=database, ahead=ahead, log=command.stdout.write)
        command.stdout.write(f"{model._meta.label} ({table}, by {interval}):")
        for line in describe(table, database):
            command.stdout.write(line)
    if not found:
        command.stdout.write("No event table is partitioned.")


def handle_partition(command: Any, *, database: str, model: Any, interval: str) -> None:
    declared = getattr(model.audit_event_model, "audit_partition", None)
    if declared and declared != interval:
        raise CommandError(
            f"{model._meta.label} declares track(partition={declared!r}); convert it --by "
            f"{declared}, or change the declaration first."
        )
    table = model.audit_event_model._meta.db_table
    try:
        partitioning.convert(table, interval, using=database, log=command.stdout.write)
    except PartitionError as exc:
        raise CommandError(str(exc)) from exc
    command.stdout.write(f"{model._meta.label} ({table}, by {interval}):")
    for line in describe(table, database):
        command.stdout.write(line)
    if not declared:
        command.stdout.write(
            f"Declare it in code too: @audit_app.track(..., partition={interval!r}) on "
            f"{model._meta.label}, then makemigrations (the migration finds it done)."
        )


def status_lines(model: Any, database: str) -> tuple[list[str], list[str]]:
    """``audit status`` lines about the model's partitions, and the problems among them."""
    table = model.audit_event_model._meta.db_table
    interval = partitioning.interval_of(table, database)
    if interval is None:
        return [], []
    found = partitioning.problems(table, using=database)
    count = len(partitioning.partitions(table, database))
    lines = [f"    partitioned by {interval}: {count} partitions"]
    lines += [f"    PROBLEM: {problem}" for problem in found]
    return lines, found
