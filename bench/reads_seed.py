"""Seeding of the reads benchmark (``bench/reads.py``): live rows, events and contexts.

Live rows of ten tracked models are created with ``bulk_create`` under
``audit_app.disable_tracking()``; their events are written straight into the event
tables with one set-based ``INSERT ... SELECT ... CROSS JOIN generate_series(1, k)``
per table, in time order (so the heap is ordered by time, as it is when events are
appended over a year), with labels (insert, update, some deletes), values that change
between versions, and one context row per ~5 events for 50 users whose activity
follows Zipf's law. Import after ``django.setup()``.
"""

from __future__ import annotations

import math
import random
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models

import audit_app
from audit_app import sql as audit_sql
from bench.harness import execute, q
from shop.models import (
    Customer,
    DigitalProduct,
    Order,
    OrderItem,
    Product,
    StaffUser,
    Tag,
)
from tests.trackapp.models import Invoice, RowWidget, Widget

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
CHUNK = 20_000


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
