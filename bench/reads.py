"""Reads, export and backfill at scale: what do history pages cost at 10k and 10M events?

Run from the repository root::

    .venv/bin/python bench/reads.py                     # 10k, then 10M events
    .venv/bin/python bench/reads.py --events 1000000    # 10k, then 1M events
    .venv/bin/python bench/reads.py --quick             # tiny sizes, a smoke run

Method. A private, durable PostgreSQL 16 (``bench/reads_settings.py``) holds the
example shop plus ``tests.trackapp``. Live rows of ten tracked models are created with
``bulk_create`` under ``audit_app.disable_tracking()``; their events are written
straight into the event tables with one set-based ``INSERT ... SELECT ... CROSS JOIN
generate_series(1, k)`` per table, in time order (so the heap is ordered by time, as
it is when events are appended over a year), with labels (insert, update, some
deletes), values that change between versions, and one context row per ~5 events
for 50 users whose activity follows Zipf's law. The same seeding code runs twice:
first to ``--small`` events (10k), measure; then it grows the same database to
``--events`` (10M), measure again. After each phase: VACUUM ANALYZE and CHECKPOINT,
untimed.

Every read is timed warm (two untimed runs first), each run a fresh queryset, and
reported as the median; admin pages are rendered in-process by Django's test client.
The export (CSV with and without diffs, JSON Lines) runs in fresh child processes
(peak RSS = VmHWM of that child) next to a plain COPY of the same rows. For the
slowest SQL statement of every case, EXPLAIN (ANALYZE, BUFFERS) is written to
``--explain``. Results are discussed in
docs/performance.md ("Reads, export and backfill at scale").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "example_project"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.reads_settings"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.signals import request_finished, request_started  # noqa: E402
from django.db import close_old_connections, connection, models  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402

import audit_app  # noqa: E402
from audit_app import export  # noqa: E402
from audit_app import sql as audit_sql  # noqa: E402
from audit_app.models import AuditEvent  # noqa: E402
from bench.common import execute, log, q  # noqa: E402
from shop.models import (  # noqa: E402
    Customer,
    DigitalProduct,
    Order,
    OrderItem,
    Product,
    StaffUser,
    Tag,
)
from tests.trackapp.models import Credential, Invoice, RowWidget, Widget  # noqa: E402

FULL = {
    "small": 10_000,
    "events": 10_000_000,
    "runs": 7,
    "admin_runs": 5,
    "export_events": 1_000_000,
    "export_runs": 3,
    "backfill_rows": 1_000_000,
    "backfill_runs": 3,
    "heavy": 100_000,
}
QUICK = {
    "small": 2_000,
    "events": 20_000,
    "runs": 3,
    "admin_runs": 2,
    "export_events": 5_000,
    "export_runs": 1,
    "backfill_rows": 10_000,
    "backfill_runs": 1,
    "heavy": 1_000,
}
# (model, share of the events, events per object per seeding phase). Customer, Tag,
# Product, DigitalProduct (concrete inheritance: its history includes Product's
# table), Order, OrderItem, StaffUser (a proxy of auth.User, password masked),
# Widget (masked token, JSON), RowWidget (row-level triggers), Invoice (UUID key).
MIX = (
    (Customer, 0.10, 20),
    (Tag, 0.02, 50),
    (DigitalProduct, 0.05, 10),
    (Product, 0.13, 20),  # its rows include DigitalProduct's parents
    (Order, 0.30, 10),
    (OrderItem, 0.15, 5),
    (StaffUser, 0.05, 10),
    (Widget, 0.08, 10),
    (RowWidget, 0.04, 10),
    (Invoice, 0.08, 10),
)
N_USERS = 50
EVENTS_PER_CONTEXT = 5
HISTORY_MODELS = (Order, Customer, OrderItem, DigitalProduct, Widget, Invoice)
CHUNK = 20_000
MiB = 1024 * 1024
# Targets of this benchmark (ms unless noted).
TARGET_READ_MS = 25.0
TARGET_PAGE_MS = 250.0
TARGET_GROWTH = 2.0
TARGET_EXPORT_S = 5.0
TARGET_EXPORT_MB = 100.0
# The export's modes and their labels: a plain COPY of the same rows (the floor),
# then audit_app's.
EXPORT_MODES = {
    "copy": "COPY (SELECT * ...) floor",
    "csv": "stream_csv",
    "csv-nodiff": "stream_csv(diff=False)",
    "jsonl": "stream_jsonl",
}
TARGET_BACKFILL_S = 60.0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------------
# Seeding


class Seeder:
    """Grows the database to a number of events; the same code for every phase.

    Events of one phase are spread evenly over that phase's time window; a year ends
    now, and each phase gets the share of it that its events have of the final total,
    so the small phase is what the big one looked like when it was young.
    """

    def __init__(self, final_events: int, heavy_final: int, seed: int = 42) -> None:
        self.final_events = final_events
        self.heavy_final = heavy_final
        self.rng = random.Random(seed)
        self.end = datetime.now(dt_timezone.utc).replace(microsecond=0)
        self.start = self.end - timedelta(days=365)
        self.clock = self.start  # end of the time already filled
        self.heavy_pk: int | None = None
        self.dormant_pk: int | None = None
        self.users: list[Any] = []
        self.superuser: Any = None

    # -- users ---------------------------------------------------------------------------

    def create_users(self) -> None:
        User = get_user_model()
        with audit_app.disable_tracking("bench seed"):
            self.superuser = User.objects.create_superuser(
                "benchadmin", "benchadmin@example.com", "benchadmin"
            )
            User.objects.bulk_create(
                User(
                    username=f"user{i:02d}",
                    email=f"user{i:02d}@example.com",
                    password="!",  # noqa: S106 (unusable)
                    is_staff=True,
                )
                for i in range(1, N_USERS + 1)
            )
        # Rank 1 is the most active user; activity falls off as 1/rank.
        self.users = list(User.objects.filter(username__startswith="user").order_by("username"))

    def user_slots(self) -> list[int]:
        """Indexes into self.users, each repeated in proportion to 1/rank."""
        harmonic = sum(1 / r for r in range(1, N_USERS + 1))
        slots = []
        for rank in range(1, N_USERS + 1):
            slots += [rank - 1] * max(1, round(1000 / rank / harmonic))
        return slots

    # -- live rows -------------------------------------------------------------------------

    def _pks(self, model: type[models.Model]) -> list[Any]:
        return list(model._base_manager.order_by("pk").values_list("pk", flat=True))

    def create_rows(self, model: type[models.Model], count: int) -> None:
        if count <= 0:
            return
        rng = self.rng
        offset = model._base_manager.count()
        if model is DigitalProduct:
            self._create_digital(count, offset)
            return
        if model is Order:
            customers = self._pks(Customer)
        if model is OrderItem:
            orders, products = self._pks(Order), self._pks(Product)
        with audit_app.disable_tracking("bench seed"):
            for base in range(0, count, CHUNK):
                rows = []
                for i in range(offset + base, offset + min(count, base + CHUNK)):
                    rows.append(self._row(model, i, rng, locals()))
                model.objects.bulk_create(rows, batch_size=5_000)

    def _row(self, model: type[models.Model], i: int, rng: random.Random, scope: dict) -> Any:
        text = f"Row {i}: " + "lorem ipsum dolor sit amet " * rng.randint(1, 4)
        if model is Customer:
            return Customer(
                name=f"Customer {i}",
                email=f"customer{i}@example.com",
                phone=f"+49 30 {i:08d}",
                api_token=f"tok-{i:012d}",
            )
        if model is Tag:
            return Tag(name=f"tag-{i}")
        if model is Product:
            return Product(
                sku=f"SKU-{i}",
                name=f"Product {i}",
                category=("books", "games", "tools", "music")[i % 4],
                price=Decimal(rng.randint(100, 99_999)) / 100,
                attributes={"weight": i % 100, "color": ("red", "blue")[i % 2]},
                description=text,
            )
        if model is Order:
            return Order(
                customer_id=rng.choice(scope["customers"]),
                status=("new", "paid", "shipped", "cancelled")[i % 4],
                total=Decimal(rng.randint(100, 999_999)) / 100,
                notes=text,
            )
        if model is OrderItem:
            return OrderItem(
                order_id=rng.choice(scope["orders"]),
                product_id=rng.choice(scope["products"]),
                quantity=rng.randint(1, 9),
            )
        if model is StaffUser:
            return StaffUser(
                username=f"staff{i}",
                email=f"staff{i}@example.com",
                first_name=f"First{i}",
                last_name=f"Last{i}",
                password="!",  # noqa: S106 (unusable)
            )
        if model is Widget:
            return Widget(
                name=f"widget {i}",
                size=i % 1000,
                data={"a": i, "tags": ["x", "y"][: i % 3]},
                secret_token=f"s-{i}",
            )
        if model is RowWidget:
            return RowWidget(name=f"row widget {i}", size=i % 1000, secret_token=f"s-{i}")
        if model is Invoice:
            return Invoice(status="draft", amount=i % 5000, code="c")
        raise ValueError(model)

    def _create_digital(self, count: int, offset: int) -> None:
        # Django's bulk_create refuses multi-table inheritance: create the parents with
        # bulk_create, then the child rows with one INSERT ... SELECT.
        with audit_app.disable_tracking("bench seed"):
            for base in range(0, count, CHUNK):
                size = min(CHUNK, count - base)
                parents = Product.objects.bulk_create(
                    (
                        Product(
                            sku=f"DSKU-{offset + base + j}",
                            name=f"Download {offset + base + j}",
                            category="music",
                            price=Decimal("9.99"),
                            attributes={"format": "mp3"},
                            description="A digital product.",
                        )
                        for j in range(size)
                    ),
                    batch_size=5_000,
                )
                execute(
                    "INSERT INTO shop_digitalproduct (product_ptr_id, download_url, file_size_mb) "
                    "SELECT p, 'https://files.example.com/' || p, p %% 700 "
                    "FROM unnest(%s::bigint[]) AS p",
                    [[p.pk for p in parents]],
                )

    # -- events ----------------------------------------------------------------------------

    def column_sql(self, model: type[models.Model], name: str, column: str) -> str:
        """The value of one event column for version ``g`` of live row ``t``."""
        event_model = model.audit_event_model
        spec = event_model.audit_spec
        if column == spec.pk_column or column in spec.masked:
            return audit_sql.value_sql(spec, "t", column)
        field = model._meta.concrete_model._meta.get_field(name)
        col = f"t.{q(column)}"
        if field.is_relation:
            return col
        if field.choices:
            values = ", ".join(audit_sql.literal(str(v)) for v, _ in field.flatchoices)
            return f"(ARRAY[{values}])[1 + (g + t.rn) % {len(field.flatchoices)}]"
        if isinstance(field, models.BooleanField):
            return f"(CASE WHEN g % 3 = 0 THEN NOT {col} ELSE {col} END)"
        if isinstance(field, (models.IntegerField, models.DecimalField)):
            return f"({col} + g)"
        if isinstance(field, models.JSONField):
            return f"({col} || jsonb_build_object('rev', g))"
        if isinstance(field, models.TextField):
            return f"({col} || ' (rev ' || g || ')')"
        if isinstance(field, models.CharField) and field.max_length:
            changed = f"left({col} || '~' || g, {field.max_length})"
            return f"(CASE WHEN g % 4 = 0 THEN {changed} ELSE {col} END)"
        return col

    def insert_events(
        self,
        model: type[models.Model],
        k: int,
        window: tuple[datetime, float],
        contexts: tuple[int, int],
        only_pk: Any = None,
    ) -> int:
        """k events per live row (or only for ``only_pk``), spread over ``window``."""
        spec = model.audit_event_model.audit_spec
        pk = q(spec.pk_column)
        live = q(spec.table)
        # Literals only (no parameters), so that "%" in the SQL needs no escaping.
        where = f"WHERE live.{pk} = {int(only_pk)}" if only_pk is not None else ""
        n = execute(f"SELECT count(*) FROM {live} AS live {where}")[0][0]
        if not n:
            return 0
        start, seconds = window
        ctx_first, n_ctx = contexts
        position = f"((((g - 1) * {n} + t.rn)::float8 + 0.5) / {k * n})"
        columns = [
            self.column_sql(model, name, col) for name, col in model.audit_event_model.audit_fields
        ]
        context_id = f"({int(ctx_first)} + floor({position} * {int(n_ctx)})::bigint)"
        # The same user as insert_contexts gave that context (the triggers copy it too).
        user_ids = ", ".join(str(int(pk)) for pk in self.slot_user_ids)
        user_id = (
            f"(ARRAY[{user_ids}])[1 + ({context_id} * 2654435761) % {len(self.slot_user_ids)}]"
        )
        statement = (
            f"{audit_sql.insert_into(spec)}\n"
            f"SELECT {audit_sql.literal(start.isoformat())}::timestamptz"
            f" + make_interval(secs => {position} * {float(seconds)!r}), "
            "CASE WHEN g = 1 AND t.fresh THEN 'insert' "
            f"WHEN g = {k} AND t.rn % 50 = 7 THEN 'delete' ELSE 'update' END, "
            f"{context_id}, {user_id}, {', '.join(columns)}\n"
            f"FROM (SELECT live.*, row_number() OVER (ORDER BY live.{pk}) - 1 AS rn, "
            f"NOT EXISTS (SELECT 1 FROM {q(spec.event_table)} AS e WHERE e.{pk} = live.{pk}) "
            f"AS fresh FROM {live} AS live {where}) AS t\n"
            f"CROSS JOIN generate_series(1, {int(k)}) AS g\n"
            "ORDER BY g, t.rn"
        )
        execute(statement)
        return n * k

    def insert_contexts(self, count: int, window: tuple[datetime, float]) -> int:
        # Below the keys of context frames (audit_app's sql.CONTEXT_KEY_MIN).
        first = execute(
            "SELECT coalesce(max(id), 0) + 1 FROM audit_app_context WHERE id < %s",
            [audit_sql.CONTEXT_KEY_MIN],
        )[0][0]
        slots = self.user_slots()
        ids = [self.users[s].pk for s in slots]
        self.slot_user_ids = ids  # insert_events copies each context's user to its events
        names = [self.users[s].username for s in slots]
        start, seconds = window
        execute(
            "INSERT INTO audit_app_context (id, created_at, user_id, metadata) "
            "SELECT c, %s::timestamptz + make_interval(secs => (c - %s)::float8 / %s * %s), "
            "(%s::bigint[])[s], jsonb_build_object('user', (%s::bigint[])[s], "
            "'username', (%s::text[])[s], 'url', '/admin/shop/order/' || c || '/change/', "
            "'method', 'POST', 'request_id', md5(c::text)) "
            "FROM (SELECT c, 1 + (c * 2654435761) %% %s AS s "
            "FROM generate_series(%s::bigint, %s::bigint) AS c) AS x",
            [start, first, count, seconds, ids, ids, names, len(slots), first, first + count - 1],
        )
        execute(
            "SELECT setval(pg_get_serial_sequence('audit_app_context', 'id'), "
            "(SELECT max(id) FROM audit_app_context WHERE id < %s))",
            [audit_sql.CONTEXT_KEY_MIN],
        )
        return first

    def total_events(self) -> int:
        return sum(
            execute(f"SELECT count(*) FROM {q(m.audit_event_model.audit_spec.event_table)}")[0][0]
            for m, _, _ in MIX
        )

    def grow(self, target: int) -> dict[str, float]:
        """Add live rows and events until about ``target`` events exist."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if not self.users:
            self.create_users()
        current = self.total_events()
        heavy_target = min(self.heavy_final, target // 100)
        if self.heavy_pk is None:
            with audit_app.disable_tracking("bench seed"):
                customer = Customer.objects.create(name="Heavy", email="heavy@example.com")
                self.heavy_pk = Order.objects.create(
                    customer=customer, notes="This order is changed all the time."
                ).pk
                self.dormant_pk = Order.objects.create(
                    customer=customer, notes="Changed a lot early on, rarely since."
                ).pk
        heavy_adds = {}
        for pk in (self.heavy_pk, self.dormant_pk):
            now = execute("SELECT count(*) FROM shop_orderevent WHERE id = %s", [pk])[0][0]
            heavy_adds[pk] = max(0, heavy_target - now)
        heavy_add = sum(heavy_adds.values())
        generic = max(0, target - current - heavy_add)
        plan = []
        for model, share, k in MIX:
            wanted_rows = max(1, round(share * generic / k))
            self.create_rows(model, wanted_rows - model._base_manager.count())
            plan.append((model, k))
        timings["live rows s"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        expected = generic + heavy_add
        seconds = (self.end - self.start).total_seconds() * expected / self.final_events
        seconds = min(seconds, (self.end - self.clock).total_seconds())
        window = (self.clock, seconds)
        n_ctx = max(1, math.ceil(expected / EVENTS_PER_CONTEXT))
        ctx_first = self.insert_contexts(n_ctx, window)
        execute("SET work_mem = '256MB'")  # this session only: the time-order sort
        written = 0
        for model, k in plan:
            written += self.insert_events(model, k, window, (ctx_first, n_ctx))
        # The active heavy object is changed all through the window; the dormant one
        # only in its first tenth (plus its ordinary events, like any order).
        if heavy_adds[self.heavy_pk]:
            written += self.insert_events(
                Order, heavy_adds[self.heavy_pk], window, (ctx_first, n_ctx), only_pk=self.heavy_pk
            )
        if heavy_adds[self.dormant_pk]:
            written += self.insert_events(
                Order,
                heavy_adds[self.dormant_pk],
                (window[0], seconds / 10),
                (ctx_first, max(1, n_ctx // 10)),
                only_pk=self.dormant_pk,
            )
        execute("RESET work_mem")
        self.clock = window[0] + timedelta(seconds=seconds)
        timings["events s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        execute("VACUUM (ANALYZE)")
        execute("CHECKPOINT")
        timings["vacuum analyze s"] = time.perf_counter() - t2
        timings["total s"] = time.perf_counter() - t0
        timings["events written"] = written
        timings["contexts written"] = n_ctx
        return timings


# ---------------------------------------------------------------------------------------
# Measuring


class Recorder:
    """Execute wrapper that remembers every statement, its parameters and its time."""

    def __init__(self) -> None:
        self.statements: list[tuple[float, str, Any]] = []

    def __call__(self, execute_: Callable, sql: str, params: Any, many: bool, context: Any):
        t0 = time.perf_counter()
        try:
            return execute_(sql, params, many, context)
        finally:
            self.statements.append((time.perf_counter() - t0, sql, params))


def explain_slowest(fn: Callable[[], Any]) -> dict[str, Any]:
    """Run ``fn`` once, then EXPLAIN (ANALYZE, BUFFERS) its slowest SELECT."""
    recorder = Recorder()
    with connection.execute_wrapper(recorder):
        fn()
    selects = [
        s for s in recorder.statements if s[1].lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    if not selects:
        return {"queries": len(recorder.statements)}
    seconds, statement, params = max(selects, key=lambda s: s[0])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return {
        "queries": len(recorder.statements),
        "statements": [
            f"{s[0] * 1000:7.2f} ms  {' '.join(s[1].split())[:150]}" for s in recorder.statements
        ],
        "slowest_ms": seconds * 1000,
        "sql": statement,
        "plan": plan,
    }


def timed(fn: Callable[[], Any], runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def pick_objects(seeder: Seeder) -> list[models.Model]:
    rng = random.Random(7)
    objects = []
    for model in HISTORY_MODELS:
        manager = model._base_manager.order_by("pk")
        if model is Order:
            manager = manager.exclude(pk__in=(seeder.heavy_pk, seeder.dormant_pk))
        count = manager.count()
        objects.append(manager[rng.randrange(count)])
    return objects


def browser_user_param(user: Any) -> str:
    """The value the event browser's ``user`` filter takes: a username or an id."""
    try:
        from audit_admin import browser_filters  # type: ignore[attr-defined]
    except ImportError:
        return user.username
    import django_filters

    for value in vars(browser_filters).values():
        if isinstance(value, type) and issubclass(value, django_filters.FilterSet):
            field = value.base_filters.get("user")
            if isinstance(field, (django_filters.NumberFilter, django_filters.ModelChoiceFilter)):
                return str(user.pk)
    return user.username


def measure(seeder: Seeder, sizes: dict, phase: str) -> dict[str, Any]:
    runs = sizes["runs"]
    results: dict[str, Any] = {}
    explains: dict[str, Any] = {}

    def case(name: str, fn: Callable[[], Any], n: int = runs) -> None:
        times = timed(fn, n)
        results[name] = {"median_ms": median(times), "min_ms": min(times), "max_ms": max(times)}
        explains[name] = explain_slowest(fn)
        results[name]["queries"] = explains[name]["queries"]
        log(f"  {phase} {name}: {median(times):.2f} ms ({explains[name]['queries']} queries)")

    case("newest 50, with diffs", lambda: list(AuditEvent.objects.all()[:50]))
    case("newest 50, without diffs", lambda: list(AuditEvent.objects.without_diffs()[:50]))
    objects = pick_objects(seeder)
    per_object = []
    for obj in objects:
        name = f"object history [:50] {obj._meta.label}"
        times = timed(lambda obj=obj: list(AuditEvent.objects.tracks(obj)[:50]), runs)
        per_object += times
        results[name] = {
            "median_ms": median(times),
            "events": AuditEvent.objects.tracks(obj).without_diffs().count(),
        }
        explains[name] = explain_slowest(lambda obj=obj: list(AuditEvent.objects.tracks(obj)[:50]))
    results["object history [:50], all objects"] = {
        "median_ms": median(per_object),
        "max_ms": max(per_object),
    }
    log(f"  {phase} object history: {median(per_object):.2f} ms")
    frequent, rare = seeder.users[0], seeder.users[-1]
    case("by_user frequent [:50]", lambda: list(AuditEvent.objects.by_user(frequent)[:50]))
    case("by_user rare [:50]", lambda: list(AuditEvent.objects.by_user(rare)[:50]))
    case("estimated_count()", lambda: AuditEvent.objects.all().estimated_count())
    heavy = Order.objects.get(pk=seeder.heavy_pk)
    dormant = Order.objects.get(pk=seeder.dormant_pk)
    case("100k-event object tracks(obj)[:25]", lambda: list(AuditEvent.objects.tracks(heavy)[:25]))
    case(
        "dormant 100k-event object tracks(obj)[:25]",
        lambda: list(AuditEvent.objects.tracks(dormant)[:25]),
    )

    # Admin pages, rendered in-process. Django closes the connection after each request
    # when CONN_MAX_AGE is 0; keep it open (as persistent connections or a pooler do)
    # so that pages are not timed with a fresh connection and cold catalog caches.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    client = Client()
    client.force_login(seeder.superuser)
    normal = objects[0]

    def page(url: str) -> Callable[[], Any]:
        def get() -> None:
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {response.status_code}")

        return get

    pages = {
        "admin timeline, normal order": reverse("admin:shop_order_history", args=[normal.pk]),
        "admin timeline, 100k-event order": reverse("admin:shop_order_history", args=[heavy.pk]),
        "admin timeline, dormant 100k-event order": reverse(
            "admin:shop_order_history", args=[dormant.pk]
        ),
    }
    try:
        browser = reverse("admin:audit_app_auditevent_changelist")
    except NoReverseMatch:
        browser = None
        results["event browser"] = "skipped: event browser not built yet"
        log(f"  {phase} event browser: skipped, not built yet")
    if browser:
        pages["browser unfiltered"] = browser
        pages["browser ?user= (frequent)"] = f"{browser}?user={browser_user_param(frequent)}"
        pages["browser ?user= (rare)"] = f"{browser}?user={browser_user_param(rare)}"
        pages["browser ?model=shop.order"] = f"{browser}?model=shop.order"
    for name, url in pages.items():
        try:
            case(name, page(url), sizes["admin_runs"])
            results[name]["url"] = url
        except RuntimeError as exc:
            results[name] = {"error": str(exc)}
            log(f"  {phase} {name}: {exc}")
    counts = {
        "events": seeder.total_events(),
        "100k-event object events": AuditEvent.objects.tracks(heavy).without_diffs().count(),
        "dormant object events": AuditEvent.objects.tracks(dormant).without_diffs().count(),
        "frequent user events": AuditEvent.objects.by_user(frequent).without_diffs().count(),
        "rare user events": AuditEvent.objects.by_user(rare).without_diffs().count(),
        "contexts": execute("SELECT count(*) FROM audit_app_context")[0][0],
    }
    return {"results": results, "explains": explains, "counts": counts}


# ---------------------------------------------------------------------------------------
# Export (child processes) and backfill


def vm_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return -1


def export_queryset(since: str) -> Any:
    return AuditEvent.objects.across(Order).filter(created_at__gte=since)


def child_export(mode: str, since: str) -> None:
    """Runs in a fresh process: export, then report time, bytes and peak RSS."""
    from django.utils.dateparse import parse_datetime

    since_dt = parse_datetime(since)
    connection.ensure_connection()
    hwm_before = vm_kb("VmHWM")
    size = lines = 0
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as out:
        if mode == "copy":
            statement = (
                "COPY (SELECT * FROM shop_orderevent WHERE audit_created_at >= %s "
                "ORDER BY audit_created_at DESC, audit_id DESC) TO STDOUT WITH (FORMAT csv)"
            )
            with connection.cursor() as cursor, cursor.cursor.copy(statement, [since_dt]) as copy:
                for chunk in copy:
                    data = bytes(chunk)
                    size += len(data)
                    lines += data.count(b"\n")
                    out.write(data)
        else:
            stream = export.stream_jsonl if mode == "jsonl" else export.stream_csv
            for data in stream(export_queryset(since_dt), diff=mode != "csv-nodiff"):
                size += len(data)
                lines += data.count(b"\n")
                out.write(data)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "mode": mode,
                "seconds": seconds,
                "bytes": size,
                "lines": lines,
                "hwm_before_kb": hwm_before,
                "hwm_kb": vm_kb("VmHWM"),
            }
        )
    )


def run_child(mode: str, since: str) -> dict[str, Any]:
    db = connection.settings_dict
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        host = url_quote(db["HOST"], safe="")
        port = f":{db['PORT']}" if db["PORT"] else ""
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{host}{port}/{db['NAME']}"
    output = subprocess.run(  # noqa: S603 (our own script)
        [sys.executable, __file__, "--child-export", mode, "--since", since],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure_export(sizes: dict) -> dict[str, Any]:
    n = sizes["export_events"]
    since = execute(
        "SELECT audit_created_at FROM shop_orderevent "
        "ORDER BY audit_created_at DESC, audit_id DESC OFFSET %s LIMIT 1",
        [n - 1],
    )
    since_value = since[0][0] if since else datetime(2000, 1, 1, tzinfo=dt_timezone.utc)
    since_text = since_value.isoformat()
    rows = execute(
        "SELECT count(*) FROM shop_orderevent WHERE audit_created_at >= %s", [since_value]
    )[0][0]
    log(f"export: {rows} Order events since {since_text}")
    run_child("csv", since_text)  # warm-up, untimed
    samples: dict[str, list[dict]] = {mode: [] for mode in EXPORT_MODES}
    modes = list(samples)
    for round_ in range(sizes["export_runs"]):
        order = modes[round_ % len(modes) :] + modes[: round_ % len(modes)]
        for mode in order:
            sample = run_child(mode, since_text)
            samples[mode].append(sample)
            log(
                f"  export {mode}: {sample['seconds']:.2f} s, "
                f"VmHWM {sample['hwm_kb'] / 1024:.0f} MB"
            )
    summary: dict[str, Any] = {"rows": rows, "since": since_text}
    for mode, runs in samples.items():
        summary[mode] = {
            "median_s": median([r["seconds"] for r in runs]),
            "seconds": [r["seconds"] for r in runs],
            "peak_rss_mb": max(r["hwm_kb"] for r in runs) / 1024,
            "idle_rss_mb": max(r["hwm_before_kb"] for r in runs) / 1024,
            "bytes": runs[0]["bytes"],
            "lines": runs[0]["lines"],
        }
    statement, params = export.rows_sql(export_queryset(since_value))
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
        summary["explain"] = "\n".join(row[0] for row in cursor.fetchall())
    return summary


def measure_backfill(sizes: dict) -> dict[str, Any]:
    n = sizes["backfill_rows"]
    event_table = q(Credential.audit_event_model.audit_spec.event_table)
    with audit_app.disable_tracking("bench seed"):
        execute(
            "INSERT INTO trackapp_credential (token) "
            "SELECT md5(g::text) FROM generate_series(1, %s) AS g",
            [n],
        )
    times = []
    for _ in range(sizes["backfill_runs"]):
        execute(f"TRUNCATE {event_table}")
        execute("VACUUM (ANALYZE) trackapp_credential")
        execute(f"VACUUM (ANALYZE) {event_table}")
        execute("CHECKPOINT")
        t0 = time.perf_counter()
        written = audit_app.backfill(Credential)
        times.append(time.perf_counter() - t0)
        if written != n:
            raise RuntimeError(f"backfill wrote {written} events, expected {n}")
        log(f"  backfill {n} rows: {times[-1]:.2f} s")
    return {"rows": n, "median_s": median(times), "seconds": times}


def measure_disk() -> dict[str, Any]:
    tables = []
    total_events = 0
    for model, _, _ in MIX:
        table = model.audit_event_model.audit_spec.event_table
        rows, heap, indexes, total = execute(
            f"SELECT count(*), pg_relation_size(%s), pg_indexes_size(%s), "
            f"pg_total_relation_size(%s) FROM {q(table)}",
            [table, table, table],
        )[0]
        total_events += rows
        tables.append(
            {"table": table, "rows": rows, "heap": heap, "indexes": indexes, "total": total}
        )
    ctx_rows, ctx_total, ctx_indexes = execute(
        "SELECT count(*), pg_total_relation_size('audit_app_context'), "
        "pg_indexes_size('audit_app_context') FROM audit_app_context"
    )[0]
    return {
        "tables": tables,
        "events": total_events,
        "context": {"rows": ctx_rows, "total": ctx_total, "indexes": ctx_indexes},
    }


# ---------------------------------------------------------------------------------------
# Report


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return f"{value:,.{digits}f}"
    return "-"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
    print()


READ_TARGETS = {
    "newest 50, with diffs": TARGET_READ_MS,
    "object history [:50], all objects": TARGET_READ_MS,
    "by_user frequent [:50]": TARGET_READ_MS,
    "by_user rare [:50]": TARGET_READ_MS,
    "browser unfiltered": TARGET_PAGE_MS,
    "browser ?user= (frequent)": TARGET_PAGE_MS,
    "browser ?user= (rare)": TARGET_PAGE_MS,
    "browser ?model=shop.order": TARGET_PAGE_MS,
}


def report(data: dict[str, Any], sizes: dict) -> None:
    small, big = data["phases"]["small"], data["phases"]["big"]
    print()
    print(f"== server: {data['server']}")
    for phase in ("small", "big"):
        seed = data["phases"][phase]["seed"]
        counts = data["phases"][phase]["counts"]
        print(
            f"== seeding to {counts['events']:,} events ({counts['contexts']:,} contexts): "
            + ", ".join(f"{k} {fmt(v, 1)}" for k, v in seed.items())
        )
    print()
    print(
        f"Reads, median ms of {sizes['runs']} warm runs (admin pages: {sizes['admin_runs']}); "
        f"small = {small['counts']['events']:,} events, big = {big['counts']['events']:,}"
    )
    rows = []
    for name, big_result in big["results"].items():
        if not isinstance(big_result, dict) or "median_ms" not in big_result:
            rows.append([name, "-", str(big_result)[:60], "-", "-", "-", "-"])
            continue
        small_result = small["results"].get(name, {})
        small_ms = small_result.get("median_ms", float("nan"))
        ratio = big_result["median_ms"] / small_ms if small_ms else float("nan")
        target = READ_TARGETS.get(name)
        verdict = "-"
        if target:
            met = big_result["median_ms"] < target and ratio <= TARGET_GROWTH
            verdict = f"<{target:.0f} ms, <=2x: {'met' if met else 'MISSED'}"
        rows.append(
            [
                name,
                fmt(small_ms),
                fmt(big_result["median_ms"]),
                fmt(ratio),
                str(big_result.get("queries", "-")),
                str(big_result.get("events", "")),
                verdict,
            ]
        )
    print_table(["case", "small ms", "big ms", "big/small", "queries", "events", "target"], rows)
    print("counts (small):", json.dumps(small["counts"]))
    print("counts (big):", json.dumps(big["counts"]))
    if "export" in data:
        ex = data["export"]
        floor = ex["copy"]["median_s"]
        print()
        print(f"Export of {ex['rows']:,} Order events (fresh child process per run):")
        rows = []
        for mode in EXPORT_MODES:
            r = ex[mode]
            target = (
                f"<{TARGET_EXPORT_S:.0f} s, <{TARGET_EXPORT_MB:.0f} MB: "
                + (
                    "met"
                    if r["median_s"] < TARGET_EXPORT_S and r["peak_rss_mb"] < 100
                    else "MISSED"
                )
                if mode != "copy"
                else "floor"
            )
            rows.append(
                [
                    EXPORT_MODES[mode],
                    fmt(r["median_s"]),
                    fmt(r["median_s"] / floor),
                    fmt(r["peak_rss_mb"], 0),
                    fmt(r["idle_rss_mb"], 0),
                    fmt(r["bytes"] / MiB, 0),
                    target,
                ]
            )
        print_table(["mode", "s", "x COPY", "peak RSS MB", "idle MB", "output MiB", "target"], rows)
    if "backfill" in data:
        bf = data["backfill"]
        rate = bf["rows"] / bf["median_s"]
        met = "met" if bf["median_s"] < TARGET_BACKFILL_S else "MISSED"
        print(
            f"Backfill of {bf['rows']:,} Credential rows: median {bf['median_s']:.2f} s "
            f"({rate:,.0f} rows/s; runs {', '.join(f'{s:.2f}' for s in bf['seconds'])}); "
            f"target <{TARGET_BACKFILL_S:.0f} s: {met}"
        )
        print()
    if "disk" in data:
        disk = data["disk"]
        print(f"Disk at {disk['events']:,} events (pg_total_relation_size, MiB):")
        rows = []
        for t in disk["tables"]:
            per = t["total"] / MiB / (t["rows"] / 1e6) if t["rows"] else float("nan")
            rows.append(
                [
                    t["table"],
                    f"{t['rows']:,}",
                    fmt(t["heap"] / MiB, 1),
                    fmt(t["indexes"] / MiB, 1),
                    fmt(t["total"] / MiB, 1),
                    fmt(per, 0),
                    fmt(t["total"] / t["rows"], 0) if t["rows"] else "-",
                ]
            )
        events_total = sum(t["total"] for t in disk["tables"])
        ctx = disk["context"]
        n = disk["events"] / 1e6
        rows.append(
            [
                "all event tables",
                f"{disk['events']:,}",
                "",
                "",
                fmt(events_total / MiB, 1),
                fmt(events_total / MiB / n, 0),
                fmt(events_total / disk["events"], 0),
            ]
        )
        rows.append(
            [
                "audit_app_context",
                f"{ctx['rows']:,}",
                "",
                fmt(ctx["indexes"] / MiB, 1),
                fmt(ctx["total"] / MiB, 1),
                fmt(ctx["total"] / MiB / n, 0),
                "(per event)",
            ]
        )
        rows.append(
            [
                "events + context",
                "",
                "",
                "",
                fmt((events_total + ctx["total"]) / MiB, 1),
                fmt((events_total + ctx["total"]) / MiB / n, 0),
                "",
            ]
        )
        print_table(
            ["table", "rows", "heap", "indexes", "total", "per 1M events", "bytes/event"], rows
        )


def server_description() -> str:
    version, shared, work_mem, jit, autovacuum = execute(
        "SELECT split_part(version(), ' on ', 1), current_setting('shared_buffers'), "
        "current_setting('work_mem'), current_setting('jit'), current_setting('autovacuum')"
    )[0]
    return (
        f"{version}, shared_buffers {shared}, work_mem {work_mem}, jit {jit}, "
        f"autovacuum {autovacuum}"
    )


def write_explains(path: Path, data: dict[str, Any]) -> None:
    parts = []
    for phase in ("small", "big"):
        for name, info in data["phases"][phase]["explains"].items():
            if "plan" not in info:
                continue
            statements = "\n".join(info["statements"])
            parts.append(
                f"### [{phase}] {name}: {info['queries']} queries, slowest "
                f"{info['slowest_ms']:.2f} ms\n\n{statements}\n\nslowest:\n{info['sql']}\n\n"
                f"{info['plan']}\n"
            )
    if "export" in data:
        parts.append(f"### export query\n\n{data['export']['explain']}\n")
    path.write_text("\n".join(parts))


def other_benchmark_running() -> bool:
    found = subprocess.run(
        ["pgrep", "-f", "bench/tracking.py"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return bool([pid for pid in found if int(pid) != os.getpid()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--events", type=int, help="events of the big phase (default 10M)")
    parser.add_argument("--small", type=int, help="events of the small phase (default 10k)")
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--explain", type=Path, help="EXPLAIN output (default: a temp file)")
    parser.add_argument("--child-export", choices=list(EXPORT_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--since", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_export:
        child_export(args.child_export, args.since)
        return

    sizes = dict(QUICK if args.quick else FULL)
    if args.events:
        sizes["events"] = args.events
    if args.small:
        sizes["small"] = args.small
    if other_benchmark_running():
        log("WARNING: bench/tracking.py is running: timings will be disturbed")
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    data: dict[str, Any] = {"sizes": sizes, "server": server_description(), "phases": {}}
    log(data["server"])
    seeder = Seeder(sizes["events"], sizes["heavy"])
    for phase, target in (("small", sizes["small"]), ("big", sizes["events"])):
        log(f"seeding to {target:,} events")
        seed = seeder.grow(target)
        log(f"seeded: {seed}")
        measured = measure(seeder, sizes, phase)
        data["phases"][phase] = {"seed": seed, **measured}
        if phase == "big":
            data["disk"] = measure_disk()
    data["export"] = measure_export(sizes)
    data["backfill"] = measure_backfill(sizes)
    data["benchmark_s"] = time.perf_counter() - started
    explain_path = args.explain or Path(tempfile.mkdtemp(prefix="bench-reads-")) / "explain.txt"
    write_explains(explain_path, data)
    report(data, sizes)
    print(f"EXPLAIN (ANALYZE, BUFFERS) of the slowest statement of every case: {explain_path}")
    print(f"benchmark took {data['benchmark_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    main()
