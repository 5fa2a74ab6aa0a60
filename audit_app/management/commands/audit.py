"""``manage.py audit``: status, backfill, export, prune, erasure, partitions, seal and verify of
the audit history."""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any

import pgtrigger
import pgtrigger.core
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import ngettext

from audit_app import conf, partition_commands, sql
from audit_app import heads as seal_heads
from audit_app.counting import count_rows
from audit_app.erasure import erase_retired
from audit_app.exceptions import SealError, TrackingError
from audit_app.export import stream_csv, stream_jsonl
from audit_app.models import AuditEvent
from audit_app.registry import tracked_models
from audit_app.retention import prune
from audit_app.seal_keys import configured as seal_key_configured
from audit_app.sealing import seal, sealing_in_use
from audit_app.snapshots import backfill
from audit_app.verification import verify


def _pruned(count: int, *, dry_run: bool) -> str:
    """ "25 rows deleted", or "25 rows would be deleted" for a dry run (events and the
    context rows no event refers to any more)."""
    if dry_run:
        text = ngettext("%(count)d row would be deleted", "%(count)d rows would be deleted", count)
    else:
        text = ngettext("%(count)d row deleted", "%(count)d rows deleted", count)
    return text % {"count": count}


def _date(value: str) -> datetime.datetime:
    """An aware datetime from YYYY-MM-DD or an ISO datetime (argparse type)."""
    try:
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime.datetime.combine(day, datetime.time.min)
    except ValueError:
        parsed = None
    if parsed is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use YYYY-MM-DD[THH:MM].")
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def _model(label: str) -> Any:
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError) as exc:
        raise CommandError(f"Unknown model {label!r}; use app_label.ModelName.") from exc
    if "audit_event_model" not in model.__dict__:
        raise CommandError(f"{model._meta.label} is not tracked by audit_app.track().")
    return model


def _table_size(database: str, table: str) -> str | None:
    """Events and disk size of an event table, e.g. "1204 events, 0.4 MiB" (None: missing).

    The number is a count where that is cheap, else the planner's estimate after a "~".
    """
    with connections[database].cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(to_regclass(%s))", [sql.quote(table)])
        size = cursor.fetchone()[0]
    if size is None:
        return None
    events = count_rows(f"SELECT 1 FROM {sql.quote(table)}", (), tables=[table], using=database)
    return f"{events} events, {size / 1048576:.1f} MiB"


def _add_integrity_parsers(sub: Any) -> None:
    """The seal and verify subcommands (docs/integrity.md)."""
    sealer = sub.add_parser("seal", help="Seal the events written since the last seal.")
    sealer.add_argument("--model", action="append", default=[], metavar="app_label.Model")
    sealer.add_argument(
        "--emit-head",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the chain's newest head: appended to FILE, or printed without one",
    )
    checker = sub.add_parser("verify", help="Check sealed history; exit 1 with findings.")
    checker.add_argument("--heads", metavar="FILE", help="heads kept outside the database")
    checker.add_argument("--since", type=_date, help="check rows of seals since this date only")
    checker.add_argument("--model", action="append", default=[], metavar="app_label.Model")
    checker.add_argument(
        "--jobs", type=int, default=2, help="database connections checking rows (default 2)"
    )


def _progress_bar(stream: Any) -> Any:
    def show(done: int, total: int) -> None:
        share = min(done / total, 1) if total else 1
        stream.write(f"\r[{'#' * int(share * 30):<30}] {done:,}/{total:,} events", ending="")

    return show


class Command(BaseCommand):
    help = "Inspect and maintain the audit history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            help="the database alias (default: default; for export, AUDIT_READ_DATABASE)",
        )
        sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=CommandParser)
        sub.add_parser("status", help="Tracked models, their triggers and event tables.")
        fill = sub.add_parser(
            "backfill", help="Write one baseline event per existing row without history."
        )
        fill.add_argument("models", nargs="+", metavar="app_label.Model")
        fill.add_argument("--label", default="snapshot")
        fill.add_argument("--batch-size", type=int, default=50_000)
        fill.add_argument(
            "--force",
            action="store_true",
            help="also write an event for rows that already have history",
        )
        prune = sub.add_parser("prune", help="Delete events written before a date.")
        prune.add_argument("--before", required=True, type=_date, help="YYYY-MM-DD[THH:MM]")
        prune.add_argument("--model", action="append", default=[], metavar="app_label.Model")
        prune.add_argument("--dry-run", action="store_true")
        prune.add_argument(
            "--archive",
            action="store_true",
            help="detach whole partitions before the date and keep them to dump, not drop them",
        )
        prune.add_argument("--batch-size", type=int, default=10_000)
        _add_integrity_parsers(sub)
        partition_commands.add_parsers(sub)
        erase = sub.add_parser(
            "erase", help="Drop the recorded values of a field the model no longer has."
        )
        erase.add_argument("model", metavar="app_label.Model")
        erase.add_argument("field", help="the removed field's name")
        erase.add_argument("--reason", required=True, help="why (kept on the record)")
        erase.add_argument("--dry-run", action="store_true")
        export = sub.add_parser("export", help="Write events as CSV or JSON Lines.")
        export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
        export.add_argument("--model", action="append", default=[], metavar="app_label.Model")
        export.add_argument("--user", help="username or primary key of the acting user")
        export.add_argument("--since", type=_date)
        export.add_argument("--until", type=_date)
        export.add_argument("--output", "-o", help="file to write (default: standard output)")
        export.add_argument(
            "--no-diff",
            dest="diff",
            action="store_false",
            help="leave changed_fields and diff empty: no previous-version lookup, much faster",
        )

    def handle(self, *args: Any, subcommand: str, database: str | None, **options: Any) -> None:
        if database is None:
            # An export only reads: it goes where history is read (a replica, if set).
            database = conf.read_database() if subcommand == "export" else DEFAULT_DB_ALIAS
        getattr(self, f"handle_{subcommand}")(database=database, **options)

    def handle_backfill(self, *, database: str, models: list[str], **options: Any) -> None:
        for label in models:
            model = _model(label)
            try:
                written = backfill(
                    model._default_manager.using(database),
                    label=options["label"],
                    batch_size=options["batch_size"],
                    force=options["force"],
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            events = ngettext(
                "%(count)d %(label)s event written", "%(count)d %(label)s events written", written
            ) % {"count": written, "label": options["label"]}
            skipped = ngettext(
                "%(count)d row skipped (it already had history)",
                "%(count)d rows skipped (they already had history)",
                written.skipped,
            ) % {"count": written.skipped}
            self.stdout.write(f"{model._meta.label}: {events}, {skipped}")

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
            size = _table_size(database, table)
            if size is None:
                problems.append(table)
            self.stdout.write(
                f"{model._meta.label} -> {event_model._meta.label} ({size or 'TABLE MISSING'})"
            )
            for trigger in triggers.get(model, []):
                status, enabled = trigger.get_installation_status(model, database=database)
                state = str(status).lower() + ("" if enabled in (True, None) else ", DISABLED")
                if status != pgtrigger.core.INSTALLED or enabled is False:
                    problems.append(trigger.get_uri(model))
                self.stdout.write(f"    trigger {trigger.name}: {state}")
            if size is not None:
                lines, partition_problems = partition_commands.status_lines(model, database)
                for line in lines:
                    self.stdout.write(line)
                problems += partition_problems
        if problems:
            raise CommandError(
                f"{len(problems)} problem(s): {', '.join(problems)}. Run manage.py migrate "
                "(or manage.py pgtrigger install) to install what is missing, and manage.py "
                "audit partitions to prepare partitions and empty the safety net."
            )
        self.stdout.write(self.style.SUCCESS("audit history: all installed"))

    def handle_partitions(self, *, database: str, model: list[str], ahead: int, **options: Any):
        partition_commands.handle_partitions(
            self, database=database, models=[_model(label) for label in model], ahead=ahead
        )

    def handle_partition(self, *, database: str, model: str, interval: str, **options: Any):
        partition_commands.handle_partition(
            self, database=database, model=_model(model), interval=interval
        )

    def handle_prune(self, *, database: str, before: Any, model: list[str], **options: Any) -> None:
        models = [_model(label) for label in model] or None
        if before > timezone.now():
            raise CommandError(
                f"--before {before:%Y-%m-%d %H:%M} is in the future: that would prune events "
                "not written yet. Give a date in the past."
            )
        if options["batch_size"] < 1:
            raise CommandError(f"--batch-size must be 1 or more, not {options['batch_size']}.")
        self.stdout.write(
            "audit prune is the sanctioned way past append-only protection; it is recorded "
            "in audit_app_bypass."
        )
        if not options["dry_run"] and sealing_in_use(database) and not seal_key_configured():
            self.stderr.write(
                "Warning: sealed events are pruned without a seal key (AUDIT_SEAL_KEY), so no "
                "prune record authenticates it: audit verify will report them as deleted."
            )
        counts = prune(
            before,
            models=models,
            dry_run=options["dry_run"],
            archive=options["archive"],
            batch_size=options["batch_size"],
            using=database,
            log=self.stdout.write if options["verbosity"] > 1 else (lambda message: None),
            say=self.stdout.write,
        )
        for label, count in counts.items():
            self.stdout.write(f"{label}: {_pruned(count, dry_run=options['dry_run'])}")
        total = sum(counts.values())
        self.stdout.write(self.style.SUCCESS(_pruned(total, dry_run=options["dry_run"])))
        if counts.archived:
            self._archive_steps(database, counts.archived)

    def _archive_steps(self, database: str, tables: list[str]) -> None:
        """What the operator does with the tables a prune --archive detached."""
        name = connections[database].settings_dict["NAME"]
        self.stdout.write(
            "Detached for archiving (they refuse changes; their context rows stay until they "
            "are dropped). Dump each, keep the dump in cold storage, then drop it:"
        )
        for table in tables:
            self.stdout.write(f"  pg_dump --format=custom -t {table} --file={table}.dump {name}")
        for table in tables:
            self.stdout.write(f"  psql {name} -c 'DROP TABLE {table}'")

    def handle_erase(
        self, *, database: str, model: str, field: str, reason: str, dry_run: bool, **options: Any
    ) -> None:
        tracked = _model(model)
        try:
            count = erase_retired(tracked, field, reason=reason, dry_run=dry_run, using=database)
        except TrackingError as exc:
            raise CommandError(str(exc)) from exc
        if dry_run:
            text = ngettext(
                "%(count)d event holds a value of %(field)s; nothing was erased",
                "%(count)d events hold a value of %(field)s; nothing was erased",
                count,
            )
        else:
            text = ngettext(
                "%(count)d event's value of %(field)s erased",
                "%(count)d events' values of %(field)s erased",
                count,
            )
        self.stdout.write(text % {"count": count, "field": f"{tracked._meta.label}.{field}"})

    def handle_export(self, *, database: str, **options: Any) -> None:
        queryset = AuditEvent.objects.using(database)
        if options["model"]:
            queryset = queryset.across(*[_model(label) for label in options["model"]])
        if options["user"]:
            users = get_user_model()._default_manager.using(database)
            user = users.filter(**{get_user_model().USERNAME_FIELD: options["user"]}).first()
            if user is None and options["user"].isdigit():
                user = users.filter(pk=options["user"]).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}.")
            queryset = queryset.by_user(user)
        if options["since"]:
            queryset = queryset.filter(created_at__gte=options["since"])
        if options["until"]:
            queryset = queryset.filter(created_at__lt=options["until"])
        stream = stream_csv if options["format"] == "csv" else stream_jsonl
        chunks = stream(queryset, diff=options["diff"])
        out = open(options["output"], "wb") if options["output"] else sys.stdout.buffer  # noqa: SIM115
        progress = options["output"] and self.stderr.isatty()
        expected = queryset.estimated_count() if progress else 0
        written = lines = 0
        try:
            for chunk in chunks:
                out.write(chunk)
                written += len(chunk)
                lines += chunk.count(b"\n")
                if progress:
                    share = min(lines / expected, 1) if expected else 0
                    bar = "#" * int(share * 30)
                    self.stderr.write(
                        f"\r[{bar:<30}] ~{lines} rows, {written >> 10} KiB", ending=""
                    )
        finally:
            if options["output"]:
                out.close()
        if progress:
            self.stderr.write("")
        if options["output"]:
            self.stdout.write(f"wrote {written} bytes to {options['output']}")

    # -- sealed history (docs/integrity.md) -----------------------------------------------------

    def handle_seal(
        self, *, database: str, model: list[str], emit_head: Any, **options: Any
    ) -> None:
        models = [_model(label) for label in model] or None
        log = self.stdout.write if options["verbosity"] > 1 else (lambda message: None)
        try:
            run = seal(models, using=database, log=log)
        except SealError as exc:
            raise CommandError(str(exc)) from exc
        for table in run.tables:
            if table.rows or table.late:
                self.stdout.write(
                    f"{table.label}: {table.rows} new, {table.late} late events sealed"
                )
        head = f"; the chain ends at record {run.head.seq}" if run.head else ""
        self.stdout.write(self.style.SUCCESS(f"{run.events} events sealed{head}"))
        if emit_head is not None:
            if run.head is None:
                raise CommandError("Nothing is sealed yet, so there is no head to emit.")
            try:
                line = seal_heads.write_head(run.head, emit_head)
            except SealError as exc:
                raise CommandError(str(exc)) from exc
            if emit_head == "-":
                self.stdout.write(line)
            else:
                self.stdout.write(f"head of record {run.head.seq} appended to {emit_head}")

    def handle_verify(self, *, database: str, model: list[str], **options: Any) -> None:
        models = [_model(label) for label in model] or None
        progress = _progress_bar(self.stderr) if self.stderr.isatty() else (lambda d, t: None)
        try:
            heads = seal_heads.read_heads(options["heads"]) if options["heads"] else None
            report = verify(
                models, heads=heads, since=options["since"], using=database,
                jobs=options["jobs"], progress=progress,
            )  # fmt: skip
        except SealError as exc:
            raise CommandError(str(exc)) from exc
        if self.stderr.isatty():
            self.stderr.write("")
        for finding in report.findings:
            self.stdout.write(f"{finding.kind}: {finding}")
        for note in report.notes():
            self.stdout.write(note)
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(self.style.SUCCESS(report.summary()))
