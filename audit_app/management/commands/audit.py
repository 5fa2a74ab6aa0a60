"""``manage.py audit``: status and backfill of the audit history."""

from __future__ import annotations

from typing import Any

import pgtrigger
import pgtrigger.core
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from audit_app import sql
from audit_app.snapshots import backfill
from audit_app.tracking import tracked_models


def _model(label: str) -> Any:
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError) as exc:
        raise CommandError(f"Unknown model {label!r}; use app_label.ModelName.") from exc
    if "audit_event_model" not in model.__dict__:
        raise CommandError(f"{model._meta.label} is not tracked by audit_app.track().")
    return model


class Command(BaseCommand):
    help = "Inspect and maintain the audit history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default")
        sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=CommandParser)
        sub.add_parser("status", help="Tracked models, their triggers and event tables.")
        fill = sub.add_parser("backfill", help="Write one baseline event per existing row.")
        fill.add_argument("models", nargs="+", metavar="app_label.Model")
        fill.add_argument("--label", default="snapshot")
        fill.add_argument("--batch-size", type=int, default=50_000)

    def handle(self, *args: Any, subcommand: str, database: str, **options: Any) -> None:
        getattr(self, f"handle_{subcommand}")(database=database, **options)

    def handle_backfill(self, *, database: str, models: list[str], **options: Any) -> None:
        for label in models:
            model = _model(label)
            count = backfill(
                model._default_manager.using(database),
                label=options["label"],
                batch_size=options["batch_size"],
            )
            self.stdout.write(f"{model._meta.label}: {count} {options['label']} event(s) written")

    def handle_status(self, *, database: str, **options: Any) -> None:
        connection = connections[database]
        problems = []
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [f"{sql.CONTEXT_FUNCTION}()"])
            has_function = cursor.fetchone()[0]
        self.stdout.write(
            f"context function {sql.CONTEXT_FUNCTION}(): "
            + ("installed" if has_function else "MISSING")
        )
        if not has_function:
            problems.append("context function")
        triggers: dict[Any, list[Any]] = {}
        for model, trigger in pgtrigger.registered():
            triggers.setdefault(model, []).append(trigger)
        for model in tracked_models():
            event_model = model.audit_event_model
            table = event_model._meta.db_table
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class c "
                    "WHERE c.oid = to_regclass(%s)",
                    [table],
                )
                row = cursor.fetchone()
            size = (
                f"~{max(row[0], 0)} events, {row[1] / 1048576:.1f} MiB" if row else "TABLE MISSING"
            )
            if not row:
                problems.append(table)
            self.stdout.write(f"{model._meta.label} -> {event_model._meta.label} ({size})")
            for trigger in triggers.get(model, []):
                status, enabled = trigger.get_installation_status(model, database=database)
                state = str(status).lower() + ("" if enabled in (True, None) else ", DISABLED")
                if status != pgtrigger.core.INSTALLED or enabled is False:
                    problems.append(trigger.get_uri(model))
                self.stdout.write(f"    trigger {trigger.name}: {state}")
        if problems:
            raise CommandError(
                f"{len(problems)} problem(s): {', '.join(problems)}. Run manage.py migrate "
                "(or manage.py pgtrigger install) to install what is missing."
            )
        self.stdout.write(self.style.SUCCESS("audit history: all installed"))
