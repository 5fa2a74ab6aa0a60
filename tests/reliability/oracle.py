"""Load oracle: concurrent writers with nonces, then an exact reconciliation.

N writer threads, each with its own database connection and inside
``audit_app.context(run=..., worker=n)``, run a random, time-bounded mix of
``save()``, ``QuerySet.update()``, ``bulk_create()``, ``bulk_update()``, upserts
(``bulk_create(update_conflicts=True)``), deletes,
``executemany``, updates of rows shared by all writers, no-op writes, statements under
``disable_tracking()``, savepoint rollbacks (a nested ``atomic()`` that raises, by hand
or through a database error), whole-transaction rollbacks, in autocommit and inside
transactions. Every value written carries a unique nonce (``<run>-<worker>-<seq>``,
with ``.<pk>`` appended when one statement writes several rows).

Each writer keeps a ledger: the events its committed work must have written (model,
label, primary key, nonce and the exact context metadata), the nonces of work that was
rolled back, and the ``audit_app_bypass`` rows its bypassed statements must have left.
Effects of a transaction or savepoint enter the ledger only when it commits.

``reconcile()`` then compares the ledger with the database, exactly:

- every committed change has exactly one event, with the context it was written in;
- no event exists that the ledger does not expect (rolled-back or no-op work);
- no rolled-back nonce appears in events, live rows or bypass records;
- the live rows are the ledger's final state (own rows) or their last event (shared);
- each object's events, by id, are the writer's commit order, and their timestamps
  never go backwards;
- every event's context row exists (no dangling id after a savepoint rollback).

Used by ``tests/reliability/test_load_oracle.py`` (small) and ``bench/load_oracle.py``
(large).
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, OperationalError, connection, connections, transaction
from django.db.models import CharField, F, Value
from django.db.models.functions import Cast, Concat

import audit_app
from audit_app import sql
from tests.trackapp.models import RowWidget, Widget

# Statement-level and row-level capture, side by side.
MODELS: dict[str, Any] = {"widget": Widget, "rowwidget": RowWidget}
SHARED_ROWS_PER_MODEL = 4
MAX_OWN_ROWS = 40  # per writer and model: beyond this, deletes are favoured

SHAPES = {  # transaction shapes and their weights
    "autocommit": 3,
    "commit": 4,
    "savepoint_rollback": 3,
    "savepoint_release": 1,
    "rollback": 2,
    "set_rollback": 1,
}


class Abort(Exception):
    """Raised on purpose to roll back a transaction or a savepoint."""


def _frozen(metadata: dict[str, Any] | None) -> str | None:
    return None if metadata is None else json.dumps(metadata, sort_keys=True)


@dataclass
class Expected:
    model: str
    label: str
    pk: int
    name: str
    context: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.model, self.label, self.pk, self.name)


@dataclass
class Scope:
    """Pending effects of a transaction or a savepoint: real only once it commits."""

    rows: dict[str, dict[int, str]]  # model -> {pk: current name} of the writer's own rows
    events: list[Expected] = field(default_factory=list)
    nonces: list[str] = field(default_factory=list)
    bypass: list[tuple[str, str, int, dict[str, Any]]] = field(default_factory=list)
    shared: bool = False  # locked a shared row (at most one per transaction: no deadlocks)

    @classmethod
    def over(cls, rows: dict[str, dict[int, str]], shared: bool = False) -> Scope:
        return cls({m: dict(r) for m, r in rows.items()}, shared=shared)

    def child(self) -> Scope:
        return Scope.over(self.rows, self.shared)

    def absorb(self, child: Scope) -> None:
        self.rows = child.rows
        self.events += child.events
        self.nonces += child.nonces
        self.bypass += child.bypass
        self.shared = child.shared


@dataclass
class Ledger:
    committed: list[Expected] = field(default_factory=list)
    committed_nonces: set[str] = field(default_factory=set)
    rolled_back: set[str] = field(default_factory=set)
    # reason (a nonce) -> (table, row count, context)
    bypass: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    own_rows: dict[str, dict[int, str]] = field(default_factory=lambda: defaultdict(dict))
    shared_rows: dict[str, list[int]] = field(default_factory=dict)
    stats: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def commit(self, scope: Scope) -> None:
        self.committed += scope.events
        self.committed_nonces.update(scope.nonces)
        for table, reason, count, context in scope.bypass:
            self.bypass[reason] = (table, count, context)

    def roll_back(self, scope: Scope) -> None:
        self.rolled_back.update(scope.nonces)


class Writer:
    """One writer thread's workload and ledger."""

    def __init__(
        self, index: int, run: str, shared: dict[str, list[int]], rng: random.Random
    ) -> None:
        self.index = index
        self.run = run
        self.shared = shared
        self.rng = rng
        self.ledger = Ledger()
        self.rows: dict[str, dict[int, str]] = {m: {} for m in MODELS}
        self.seq = itertools.count()
        self.txn = 0
        self.op_no = 0
        self.ops: list[tuple[Callable[..., None], int]] = [
            (self.op_save_insert, 4),
            (self.op_save_update, 4),
            (self.op_noop, 1),
            (self.op_queryset_update, 3),
            (self.op_bulk_create, 2),
            (self.op_bulk_update, 2),
            (self.op_upsert, 1),
            (self.op_delete, 2),
            (self.op_queryset_delete, 1),
            (self.op_executemany, 1),
            (self.op_shared_update, 2),
            (self.op_bypass, 1),
        ]

    # -- helpers ----------------------------------------------------------------------

    def nonce(self, scope: Scope) -> str:
        value = f"{self.run}-{self.index}-{next(self.seq)}"
        scope.nonces.append(value)
        return value

    def context(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        expected = {"run": self.run, "worker": self.index, "txn": self.txn, **(extra or {})}
        actual = audit_app.current_context()
        if actual != expected:  # the workload itself went wrong, not the product
            raise AssertionError(f"current_context() is {actual}, expected {expected}")
        return expected

    def sample(self, scope: Scope, model: str, most: int) -> list[int]:
        pks = list(scope.rows[model])
        return self.rng.sample(pks, min(len(pks), self.rng.randint(1, most)))

    # -- operations: each does its writes and records what they must leave behind --------

    def op_save_insert(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        name = self.nonce(scope)
        obj = MODELS[m](name=name, size=self.rng.randint(0, 9))
        obj.save()
        scope.rows[m][obj.pk] = name
        scope.events.append(Expected(m, "insert", obj.pk, name, ctx))

    def op_save_update(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        if not scope.rows[m]:
            return self.op_save_insert(scope, m, ctx)
        pk = self.rng.choice(list(scope.rows[m]))
        obj = MODELS[m].objects.get(pk=pk)
        obj.name = self.nonce(scope)
        obj.save()
        scope.rows[m][pk] = obj.name
        scope.events.append(Expected(m, "update", pk, obj.name, ctx))

    def op_noop(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        """Writes that change nothing: no event, no context row."""
        if not scope.rows[m]:
            return self.op_save_insert(scope, m, ctx)
        pks = self.sample(scope, m, 5)
        MODELS[m].objects.get(pk=pks[0]).save()
        assert MODELS[m].objects.filter(pk__in=pks).update(size=F("size")) == len(pks)
        self.ledger.stats["noop statements"] += 2

    def op_queryset_update(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        if not scope.rows[m]:
            return self.op_bulk_create(scope, m, ctx)
        pks = self.sample(scope, m, 6)
        nonce = self.nonce(scope)
        changed = (
            MODELS[m]
            .objects.filter(pk__in=pks)
            .update(name=Concat(Value(nonce + "."), Cast("id", CharField())))
        )
        assert changed == len(pks), (changed, pks)
        for pk in pks:
            scope.rows[m][pk] = f"{nonce}.{pk}"
            scope.events.append(Expected(m, "update", pk, f"{nonce}.{pk}", ctx))

    def op_bulk_create(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        nonce = self.nonce(scope)
        objs = [MODELS[m](name=f"{nonce}.{i}") for i in range(self.rng.randint(1, 12))]
        for obj in MODELS[m].objects.bulk_create(objs):
            scope.rows[m][obj.pk] = obj.name
            scope.events.append(Expected(m, "insert", obj.pk, obj.name, ctx))

    def op_bulk_update(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        if not scope.rows[m]:
            return self.op_bulk_create(scope, m, ctx)
        nonce = self.nonce(scope)
        objs = [MODELS[m](pk=pk, name=f"{nonce}.{pk}") for pk in self.sample(scope, m, 6)]
        MODELS[m].objects.bulk_update(objs, ["name"])
        for obj in objs:
            scope.rows[m][obj.pk] = obj.name
            scope.events.append(Expected(m, "update", obj.pk, obj.name, ctx))

    def op_upsert(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        """INSERT ... ON CONFLICT DO UPDATE: existing rows are updated, new ones inserted."""
        nonce = self.nonce(scope)
        pks = self.sample(scope, m, 3) if scope.rows[m] else []
        objs = [MODELS[m](pk=pk, name=f"{nonce}.{pk}") for pk in pks]
        objs += [MODELS[m](name=f"{nonce}.n{i}") for i in range(self.rng.randint(0, 2))]
        done = MODELS[m].objects.bulk_create(
            objs, update_conflicts=True, unique_fields=["id"], update_fields=["name"]
        )
        for obj in done:
            label = "update" if obj.pk in scope.rows[m] else "insert"
            scope.rows[m][obj.pk] = obj.name
            scope.events.append(Expected(m, label, obj.pk, obj.name, ctx))

    def op_delete(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        if not scope.rows[m]:
            return self.op_save_insert(scope, m, ctx)
        pk = self.rng.choice(list(scope.rows[m]))
        MODELS[m].objects.get(pk=pk).delete()
        scope.events.append(Expected(m, "delete", pk, scope.rows[m].pop(pk), ctx))

    def op_queryset_delete(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        if not scope.rows[m]:
            return self.op_bulk_create(scope, m, ctx)
        pks = self.sample(scope, m, 5)
        MODELS[m].objects.filter(pk__in=pks).delete()
        for pk in pks:
            scope.events.append(Expected(m, "delete", pk, scope.rows[m].pop(pk), ctx))

    def op_executemany(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        if not scope.rows[m]:
            return self.op_bulk_create(scope, m, ctx)
        pks = self.sample(scope, m, 4)
        nonce = self.nonce(scope)
        table = sql.quote(MODELS[m]._meta.db_table)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET name = %s WHERE id = %s",
                [(f"{nonce}.{pk}", pk) for pk in pks],
            )
        for pk in pks:
            scope.rows[m][pk] = f"{nonce}.{pk}"
            scope.events.append(Expected(m, "update", pk, f"{nonce}.{pk}", ctx))

    def op_shared_update(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        """Rows every writer updates: row-lock waits and contention on one object."""
        if scope.shared:
            return self.op_save_update(scope, m, ctx)
        scope.shared = True
        pk = self.rng.choice(self.shared[m])
        name = self.nonce(scope)
        assert MODELS[m].objects.filter(pk=pk).update(name=name) == 1
        scope.events.append(Expected(m, "update", pk, name, ctx))

    def op_bypass(self, scope: Scope, m: str, ctx: dict[str, Any]) -> None:
        """A statement under disable_tracking(): no events, one bypass record per trigger
        call (statement level: one for the statement; row level: one per row)."""
        if not scope.rows[m]:
            return self.op_save_insert(scope, m, ctx)
        pks = self.sample(scope, m, 4)
        reason = self.nonce(scope)
        with audit_app.disable_tracking(reason):
            changed = MODELS[m].objects.filter(pk__in=pks).update(size=F("size") + 1)
        assert changed == len(pks)
        scope.bypass.append((MODELS[m]._meta.db_table, reason, changed, ctx))

    # -- transactions ---------------------------------------------------------------------

    def some_ops(self, scope: Scope, count: int) -> None:
        for _ in range(count):
            m = self.rng.choice(list(MODELS))
            if len(scope.rows[m]) > MAX_OWN_ROWS:
                op = self.rng.choice([self.op_delete, self.op_queryset_delete])
            else:
                op = self.rng.choices([o for o, _ in self.ops], weights=[w for _, w in self.ops])[0]
            self.ledger.stats[op.__name__[3:]] += 1
            if self.rng.random() < 0.3:
                # A nested context for this operation only: its events must carry "op",
                # and the next operation's events must not.
                self.op_no += 1
                with audit_app.context(op=self.op_no):
                    op(scope, m, self.context({"op": self.op_no}))
            else:
                op(scope, m, self.context())

    def failing_savepoint(self, scope: Scope) -> None:
        child = scope.child()
        try:
            with transaction.atomic():
                self.some_ops(child, self.rng.randint(1, 3))
                if self.rng.random() < 0.5 or not any(child.rows.values()):
                    raise Abort
                # Or let the database refuse a statement: a duplicate primary key.
                m = next(m for m in MODELS if child.rows[m])
                pk = next(iter(child.rows[m]))
                MODELS[m].objects.create(pk=pk, name=self.nonce(child))
        except (Abort, IntegrityError):
            self.ledger.roll_back(child)
            scope.shared = scope.shared or child.shared
            self.ledger.stats["savepoint rollbacks"] += 1
            return
        raise AssertionError("the savepoint was expected to fail")

    def unit(self) -> None:
        self.txn += 1
        shape = self.rng.choices(list(SHAPES), weights=list(SHAPES.values()))[0]
        self.ledger.stats[f"shape {shape}"] += 1
        with audit_app.context(txn=self.txn):
            scope = Scope.over(self.rows)
            if shape == "autocommit":
                self.some_ops(scope, 1)
                self.finish(scope, committed=True)
                return
            try:
                with transaction.atomic():
                    self.some_ops(scope, self.rng.randint(1, 4))
                    if shape == "savepoint_rollback":
                        self.failing_savepoint(scope)
                        self.some_ops(scope, self.rng.randint(0, 2))
                    elif shape == "savepoint_release":
                        child = scope.child()
                        with transaction.atomic():
                            self.some_ops(child, self.rng.randint(1, 3))
                        scope.absorb(child)
                        self.some_ops(scope, self.rng.randint(0, 2))
                    elif shape == "rollback":
                        raise Abort
                    elif shape == "set_rollback":
                        transaction.set_rollback(True)
            except Abort:
                self.finish(scope, committed=False)
                return
            except OperationalError as exc:
                # A deadlock or serialization failure: the server rolled it all back.
                self.ledger.stats[f"aborted by the server: {type(exc.__cause__).__name__}"] += 1
                self.finish(scope, committed=False)
                return
            self.finish(scope, committed=shape != "set_rollback")

    def finish(self, scope: Scope, *, committed: bool) -> None:
        if committed:
            self.ledger.commit(scope)
            self.rows = scope.rows
            self.ledger.stats["transactions committed"] += 1
        else:
            self.ledger.roll_back(scope)
            self.ledger.stats["transactions rolled back"] += 1

    def run_until(self, deadline: float) -> None:
        with audit_app.context(run=self.run, worker=self.index):
            while time.monotonic() < deadline:
                self.unit()
        self.ledger.own_rows = self.rows


def _require_empty_tables() -> None:
    """The reconciliation reads whole tables: they must hold this run's rows only."""
    tables = [sql.BYPASS_TABLE]
    for model in MODELS.values():
        tables += [model._meta.db_table, model.audit_event_model._meta.db_table]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT EXISTS (SELECT FROM {sql.quote(table)})")
            if cursor.fetchone()[0]:
                raise RuntimeError(f"{table} is not empty; the load oracle needs empty tables.")


@dataclass
class LoadResult:
    run: str
    workers: int
    duration: float
    ledger: Ledger


def run_load(
    workers: int = 4,
    duration: float = 5.0,
    seed: int | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> LoadResult:
    """Run the writers against the default database and return their merged ledger."""
    seed = random.randrange(2**32) if seed is None else seed
    run = uuid.uuid4().hex[:6]
    log(f"run {run}: {workers} writer(s) x {duration:g} s, seed {seed}")
    merged = Ledger()
    _require_empty_tables()
    # Rows every writer updates, written by the main thread in a context of its own.
    with audit_app.context(run=run, worker="setup", txn=0), transaction.atomic():
        ctx = audit_app.current_context()
        for m, model in MODELS.items():
            objs = model.objects.bulk_create(
                [model(name=f"{run}-setup-{m}.{i}") for i in range(SHARED_ROWS_PER_MODEL)]
            )
            merged.shared_rows[m] = [obj.pk for obj in objs]
            merged.committed += [Expected(m, "insert", o.pk, o.name, ctx) for o in objs]
    writers = [
        Writer(i, run, merged.shared_rows, random.Random(f"{seed}-{i}")) for i in range(workers)
    ]
    start = threading.Barrier(workers + 1)
    deadline: list[float] = []

    def target(writer: Writer) -> None:
        try:
            start.wait()
            writer.run_until(deadline[0])
        except BaseException:
            writer.ledger.errors.append(f"writer {writer.index}:\n{traceback.format_exc()}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(w,), daemon=True) for w in writers]
    for thread in threads:
        thread.start()
    deadline.append(time.monotonic() + duration)
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    for writer in writers:
        ledger = writer.ledger
        merged.committed += ledger.committed
        merged.committed_nonces |= ledger.committed_nonces
        merged.rolled_back |= ledger.rolled_back
        merged.bypass.update(ledger.bypass)
        for m, rows in ledger.own_rows.items():
            merged.own_rows[m].update(rows)
        merged.stats.update(ledger.stats)
        merged.errors += ledger.errors
    log(f"run {run}: writers done in {elapsed:.1f} s")
    return LoadResult(run, workers, elapsed, merged)


# -- reconciliation ---------------------------------------------------------------------


@dataclass
class Report:
    events_checked: int = 0
    expected_events: int = 0
    live_rows_checked: int = 0
    bypass_records_checked: int = 0
    contexts_written: int = 0
    mismatches: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def mismatch_count(self) -> int:
        return sum(len(v) for v in self.mismatches.values())

    def add(self, kind: str, detail: str) -> None:
        self.mismatches[kind].append(detail)

    def summary(self, limit: int = 5) -> str:
        lines = [
            f"events checked: {self.events_checked} (expected {self.expected_events})",
            f"live rows checked: {self.live_rows_checked}",
            f"bypass records checked: {self.bypass_records_checked}",
            f"context rows written: {self.contexts_written}",
            f"mismatches: {self.mismatch_count}",
        ]
        for kind, details in sorted(self.mismatches.items()):
            lines.append(f"  {kind}: {len(details)}")
            lines += [f"    {d}" for d in details[:limit]]
        return "\n".join(lines)


def _nonce_of(name: str) -> str:
    return name.split(".", 1)[0]


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def reconcile(result: LoadResult) -> Report:
    """Compare the ledger with the database; every difference is a mismatch."""
    ledger = result.ledger
    report = Report(expected_events=len(ledger.committed))
    for error in ledger.errors:
        report.add("writer errors", error)
    expected: dict[tuple[str, str, int, str], Expected] = {}
    for item in ledger.committed:
        if item.key in expected:
            report.add("ledger", f"nonce used twice: {item.key}")
        expected[item.key] = item
    by_object: dict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)
    for item in ledger.committed:
        by_object[(item.model, item.pk)].append((item.label, item.name))

    seen: Counter = Counter()
    with connection.cursor() as cursor:
        for m, model in MODELS.items():
            event_table = sql.quote(model.audit_event_model._meta.db_table)
            cursor.execute(
                "SELECT e.audit_id, e.audit_label, e.id, e.name, e.audit_created_at, "
                "e.audit_context_id, c.id IS NOT NULL, c.metadata "
                f"FROM {event_table} AS e "
                f"LEFT JOIN {sql.quote(sql.CONTEXT_TABLE)} AS c ON c.id = e.audit_context_id "
                "ORDER BY e.audit_id"
            )
            chains: dict[int, list[tuple[str, str, Any]]] = defaultdict(list)
            for event_id, label, pk, name, created, context_id, found, metadata in cursor:
                report.events_checked += 1
                key = (m, label, pk, name)
                seen[key] += 1
                chains[pk].append((label, name, created))
                if _nonce_of(name) in ledger.rolled_back:
                    report.add("rolled-back nonce in events", f"{m} event {event_id}: {key}")
                if key not in expected:
                    report.add("unexpected events", f"{m} event {event_id}: {key}")
                    continue
                if seen[key] > 1:
                    report.add("duplicate events", f"{m} event {event_id}: {key}")
                if context_id is None:
                    report.add("events without context", f"{m} event {event_id}: {key}")
                elif not found:
                    report.add(
                        "dangling context ids", f"{m} event {event_id}: context {context_id}"
                    )
                elif _load(metadata) != expected[key].context:
                    report.add(
                        "wrong context",
                        f"{m} event {event_id} {key}: {_load(metadata)} != {expected[key].context}",
                    )
            shared = set(ledger.shared_rows.get(m, []))
            for pk, chain in chains.items():
                times = [created for _, _, created in chain]
                if times != sorted(times):
                    report.add("timestamps out of id order", f"{m} {pk}")
                if pk not in shared and (m, pk) in by_object:
                    got = [(label, name) for label, name, _ in chain]
                    if got != by_object[(m, pk)]:
                        report.add(
                            "object history differs from commit order",
                            f"{m} {pk}: {got} != {by_object[(m, pk)]}",
                        )

            # Live rows: the writers' final state, and shared rows equal their last event.
            cursor.execute(f"SELECT id, name FROM {sql.quote(model._meta.db_table)}")
            live = dict(cursor.fetchall())
            report.live_rows_checked += len(live)
            want = dict(ledger.own_rows.get(m, {}))
            for pk in shared:
                want[pk] = chains[pk][-1][1] if chains.get(pk) else None
            for pk, name in live.items():
                if _nonce_of(name) in ledger.rolled_back:
                    report.add("rolled-back nonce in live rows", f"{m} {pk}: {name}")
            if live != want:
                diff = {
                    pk: (live.get(pk), want.get(pk))
                    for pk in set(live) | set(want)
                    if live.get(pk) != want.get(pk)
                }
                for pk, (got, wanted) in sorted(diff.items())[:50]:
                    report.add("live rows differ", f"{m} {pk}: live {got!r}, ledger {wanted!r}")

        for key, item in expected.items():
            if seen[key] == 0:
                report.add("missing events", f"{key} context {item.context}")

        # Bypass records: one per trigger call, summed per reason.
        cursor.execute(
            "SELECT b.table_name, b.operation, b.row_count, b.reason, c.metadata "
            f"FROM {sql.quote(sql.BYPASS_TABLE)} AS b "
            f"LEFT JOIN {sql.quote(sql.CONTEXT_TABLE)} AS c ON c.id = b.context_id"
        )
        bypassed: dict[str, list[tuple[str, str, int, Any]]] = defaultdict(list)
        for table, operation, count, reason, metadata in cursor:
            report.bypass_records_checked += 1
            bypassed[reason].append((table, operation, count, _load(metadata)))
            if reason in ledger.rolled_back:
                report.add("rolled-back nonce in bypass records", reason)
        for reason, (table, count, context) in ledger.bypass.items():
            records = bypassed.pop(reason, [])
            if (
                not records
                or {r[:2] for r in records} != {(table, "UPDATE")}
                or sum(r[2] for r in records) != count
                or any(r[3] != context for r in records)
            ):
                report.add("bypass records differ", f"{reason}: {records} != {table} x {count}")
        for reason, records in bypassed.items():
            if reason not in ledger.rolled_back:
                report.add("unexpected bypass records", f"{reason}: {records}")

        cursor.execute(
            f"SELECT count(*) FROM {sql.quote(sql.CONTEXT_TABLE)} WHERE metadata->>'run' = %s",
            [result.run],
        )
        report.contexts_written = cursor.fetchone()[0]
    return report
