"""Fill the example shop with users, data and a history worth browsing.

``manage.py seed`` creates three logins (``admin``, ``editor``, ``viewer``; each
password equals the username: demo only) and a few hundred objects, each edited a
few times by different users, so history pages have real content. It does nothing
when the ``admin`` user exists, unless ``--force``.

``manage.py seed --events N`` also writes N more events for benchmarks, with
set-based SQL (``bulk_create`` and ``QuerySet.update``) so the triggers do the work.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from django.db.models import F, Max

import audit_app
from audit_app.models import BaseEvent
from audit_app.registry import tracked_models
from shop.models import Customer, DigitalProduct, Order, OrderItem, Product, Tag

# Demo logins: the password equals the username. Never reuse this outside the demo.
USERS = {
    "admin": {"is_staff": True, "is_superuser": True, "email": "admin@example.com"},
    "editor": {"is_staff": True, "is_superuser": False, "email": "editor@example.com"},
    "viewer": {"is_staff": True, "is_superuser": False, "email": "viewer@example.com"},
}
# Granted to ``editor`` when the admin app defines them (a later release adds them).
AUDIT_PERMISSIONS = ("revert_auditevent", "export_auditevent")

TAGS = (
    "bestseller", "new", "sale", "gift", "classic", "eco", "limited", "bundle",
    "kids", "pro", "refurbished", "imported",
)  # fmt: skip
FIRST_NAMES = (
    "Ada", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Greta", "Hiro", "Inès", "Jonas",
    "Kofi", "Lena", "Mateo", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tara",
)  # fmt: skip
LAST_NAMES = (
    "Adler", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Horvat", "Ivanova",
    "Jensen", "Kowalski", "Lindqvist", "Müller", "Novak", "O'Brien", "Petrov", "Rossi",
)  # fmt: skip
PRODUCT_WORDS = {
    Product.Category.BOOKS: ("Handbook", "Atlas", "Novel", "Cookbook", "Guide", "Anthology"),
    Product.Category.GAMES: ("Puzzle", "Card Game", "Board Game", "Quest", "Strategy Set"),
    Product.Category.TOOLS: ("Screwdriver", "Wrench", "Drill", "Saw", "Toolbox", "Level"),
    Product.Category.MUSIC: ("Album", "Vinyl", "Songbook", "Sampler", "Live Recording"),
}
ADJECTIVES = ("Compact", "Deluxe", "Classic", "Modern", "Tiny", "Grand", "Swift", "Quiet")
NOTES = (
    "Leave the parcel with the neighbour.",
    "Gift wrap, please.",
    "Customer asked for an invoice by email.",
    "Deliver after 5 pm.",
    "",
)

N_CUSTOMERS = 60
N_PRODUCTS = 80
N_DIGITAL = 20
N_ORDERS = 150
EVENTS_BATCH = 10_000


def as_user(user: AbstractBaseUser) -> audit_app.context:
    """Attribute the events written inside the block to ``user``."""
    return audit_app.context(user=user.pk, username=user.get_username(), url="/seed", method="SEED")


def as_admin_save(user: AbstractBaseUser, save: str) -> audit_app.context:
    """The context of one save by ``user``, as one request of a change form: one change
    set (``save`` tells it from the others; not shown, so rows stay compact)."""
    return audit_app.context(
        user=user.pk, username=user.get_username(), url="/seed", method="SEED", save=save
    )


def shop_models() -> list[type[models.Model]]:
    """The shop's own data models: no event tables, no proxies of other apps' tables."""
    return [
        model
        for model in apps.get_app_config("shop").get_models()
        if not issubclass(model, BaseEvent) and model._meta.concrete_model._meta.app_label == "shop"
    ]


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Command(BaseCommand):
    help = (
        "Create the demo logins (admin, editor, viewer; password = username) and a shop "
        "with history. Skips when the admin user exists, unless --force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed even if the admin user exists (adds another batch of shop data).",
        )
        parser.add_argument(
            "--events",
            type=int,
            default=0,
            metavar="N",
            help="Also write N more events in bulk (set-based SQL), for benchmarks.",
        )
        parser.add_argument(
            "--random-seed", type=int, default=42, help="Seed of the random data (default 42)."
        )

    def handle(self, *args: Any, force: bool, events: int, random_seed: int, **options: Any):
        if events < 0:
            raise CommandError(f"--events must be 0 or more, got {events}.")
        self.rng = random.Random(random_seed)
        User = get_user_model()

        if User.objects.filter(username="admin").exists() and not force:
            self.stdout.write(
                "The demo data exists already (user 'admin'); use --force to add more."
            )
        else:
            users = self.create_users()
            self.seed_shop(users)
            self.stdout.write(self.style.SUCCESS("Seeded the shop."))
            self.stdout.write(
                "Logins (password = username, demo only): "
                + ", ".join(f"{name}/{name}" for name in USERS)
            )

        if events:
            users = list(User.objects.filter(username__in=USERS).order_by("username"))
            written = self.write_events(events, users)
            self.stdout.write(self.style.SUCCESS(f"Wrote {written} events."))

    # -- users ---------------------------------------------------------------------

    def create_users(self) -> dict[str, AbstractBaseUser]:
        User = get_user_model()
        users: dict[str, AbstractBaseUser] = {}
        for username, attributes in USERS.items():
            # The admin is created by nobody; the other two by the admin.
            author = (
                as_user(users["admin"]) if users else audit_app.context(url="/seed", method="SEED")
            )
            with author:
                users[username], _ = User.objects.update_or_create(
                    username=username,
                    defaults={**attributes, "password": make_password(username)},
                )

        model_types = ContentType.objects.get_for_models(
            *shop_models(), for_concrete_models=False
        ).values()
        shop_perms = Permission.objects.filter(content_type__in=model_types)
        audit_perms = Permission.objects.filter(
            content_type__app_label="audit_app", codename__in=AUDIT_PERMISSIONS
        )
        users["editor"].user_permissions.set([*shop_perms, *audit_perms])
        users["viewer"].user_permissions.set(shop_perms.filter(codename__startswith="view_"))
        return users

    # -- shop data -----------------------------------------------------------------

    def seed_shop(self, users: dict[str, AbstractBaseUser]) -> None:
        """Create the shop's objects, then let the users edit them in a few rounds.

        Each round is one transaction, so an object's versions get distinct timestamps.
        The rounds mix the ways Django writes (save, bulk_create, bulk_update, update,
        delete with cascades): the triggers record them all alike.
        """
        rng = self.rng
        admin, editor = users["admin"], users["editor"]
        product_tag = Product.tags.through

        with transaction.atomic(), as_user(admin):
            Tag.objects.bulk_create([Tag(name=name) for name in TAGS], ignore_conflicts=True)
            tags = list(Tag.objects.filter(name__in=TAGS).order_by("name"))
            sale = next(tag for tag in tags if tag.name == "sale")
            customers = Customer.objects.bulk_create(self.new_customers(N_CUSTOMERS))
            products = self.new_products(N_PRODUCTS, N_DIGITAL)
            product_tag.objects.bulk_create(
                product_tag(product_id=product.pk, tag_id=tag.pk)
                for product in products
                for tag in rng.sample(tags, rng.randint(0, 3))
            )

        with transaction.atomic(), as_user(editor):
            reachable = rng.sample(customers, len(customers) // 2)
            for customer in reachable:
                customer.phone = f"+49 30 {rng.randint(1000000, 9999999)}"
            Customer.objects.bulk_update(reachable, ["phone"])
            on_sale = rng.sample(products, len(products) // 2)
            for product in on_sale:
                product.price = (product.price * Decimal("0.9")).quantize(Decimal("0.01"))
                product.description = f"{product.description} Now 10% off."
            Product.objects.bulk_update(on_sale, ["price", "description"])
            product_tag.objects.bulk_create(
                [product_tag(product_id=product.pk, tag_id=sale.pk) for product in on_sale],
                ignore_conflicts=True,
            )

        with transaction.atomic(), as_user(admin):
            for customer in rng.sample(customers, 10):
                customer.name = f"{customer.name} Jr."
                customer.api_token = f"tok_{rng.getrandbits(64):016x}"
                customer.save(update_fields=["name", "api_token"])
            for product in rng.sample(products, 15):
                product.active = False
                product.attributes = {**product.attributes, "discontinued": True}
                product.save(update_fields=["active", "attributes"])
            for product in [p for p in products if isinstance(p, DigitalProduct)][:10]:
                product.file_size_mb += 1
                product.download_url = product.download_url.replace(".zip", "-v2.zip")
                product.save(update_fields=["file_size_mb", "download_url"])

        # A few customers never order: they are the ones deleted later on.
        orders, items = self.seed_orders(
            customers[:-5], [p for p in products if p.active], admin, editor
        )
        self.edit_like_the_admin(editor, orders, items, products, tags)

        with transaction.atomic(), as_user(editor):
            # Customers call to change a quantity; the order total follows.
            changed = rng.sample(orders, len(orders) // 3)
            first_items = [items[order.pk][0] for order in changed]
            for item in first_items:
                item.quantity += 1
            OrderItem.objects.bulk_update(first_items, ["quantity"])
            for order, item in zip(changed, first_items, strict=True):
                order.total += item.product.price
            Order.objects.bulk_update(changed, ["total"])

        with transaction.atomic(), as_user(admin):
            # Deleted objects, for the restore pages.
            for customer in rng.sample(customers[-5:], 3):
                customer.delete()
            sold = {item.product_id for order_items in items.values() for item in order_items}
            for product in [p for p in products if p.pk not in sold][:3]:
                product.delete()  # its tag assignments go with it, recorded too
            for order in rng.sample(orders, 5):
                order.delete()  # cascades to its items, recorded too

    def edit_like_the_admin(self, editor, orders, items, products, tags) -> None:
        """Saves as the admin's change forms make them, one request each: an order with
        its inline items (a status, a quantity, an item added, one removed), a product's
        tags. Each is one change set on the object's history timeline."""
        rng = self.rng
        on_shelf = [p for p in products if p.active]
        with transaction.atomic():
            for n, order in enumerate(rng.sample(orders, 8)):
                with as_admin_save(editor, f"order-{n}"):
                    order.status = Order.Status.PAID
                    order.save(update_fields=["status"])
                    kept, *rest = items[order.pk]
                    kept.quantity += 2
                    kept.save(update_fields=["quantity"])
                    for gone in rest[:1]:
                        gone.delete()
                    items[order.pk] = [kept, *rest[1:]]
                    added = OrderItem.objects.create(order=order, product=rng.choice(on_shelf))
                    items[order.pk].append(added)
            for n, product in enumerate(rng.sample(on_shelf, 8)):
                with as_admin_save(editor, f"tags-{n}"):
                    current = list(product.tags.all())
                    product.tags.remove(*current[:1])
                    product.tags.add(*rng.sample([t for t in tags if t not in current], 1))

    def seed_orders(
        self, customers: list[Customer], products: list[Product], admin, editor
    ) -> tuple[list[Order], dict[int, list[OrderItem]]]:
        rng = self.rng
        with transaction.atomic(), as_user(editor):
            baskets = [
                [
                    (product, rng.randint(1, 3))
                    for product in rng.sample(products, rng.randint(1, 4))
                ]
                for _ in range(N_ORDERS)
            ]
            orders = Order.objects.bulk_create(
                Order(
                    customer=rng.choice(customers),
                    notes=rng.choice(NOTES),
                    total=sum((p.price * quantity for p, quantity in basket), Decimal("0")),
                )
                for basket in baskets
            )
            created = OrderItem.objects.bulk_create(
                OrderItem(order=order, product=product, quantity=quantity)
                for order, basket in zip(orders, baskets, strict=True)
                for product, quantity in basket
            )
        items: dict[int, list[OrderItem]] = {}
        for item in created:
            items.setdefault(item.order_id, []).append(item)

        # Orders move on: paid by the editor, then shipped or cancelled by the admin.
        paid = rng.sample(orders, len(orders) * 2 // 3)
        with transaction.atomic(), as_user(editor):
            Order.objects.filter(pk__in=[order.pk for order in paid]).update(
                status=Order.Status.PAID
            )
            for order in paid:
                order.status = Order.Status.PAID
        with transaction.atomic(), as_user(admin):
            shipped = paid[: len(paid) // 2]
            for order in shipped:
                order.status = Order.Status.SHIPPED
                order.notes = f"{order.notes} Tracking no. {rng.randint(10**9, 10**10)}.".strip()
            Order.objects.bulk_update(shipped, ["status", "notes"])
            for order in rng.sample([o for o in orders if o.status == Order.Status.NEW], 10):
                order.status = Order.Status.CANCELLED
                order.save(update_fields=["status"])
        return orders, items

    def new_customers(self, count: int) -> list[Customer]:
        taken = set(Customer.objects.values_list("email", flat=True))
        customers = []
        for number in itertools.count(1):
            if len(customers) == count:
                break
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            email = f"{first}.{last}.{number}@example.com".lower().replace("'", "")
            if email not in taken:
                customers.append(Customer(name=f"{first} {last}", email=email))
        return customers

    def new_products(self, count: int, digital: int) -> list[Product]:
        taken = set(Product.objects.values_list("sku", flat=True))
        skus = (sku for n in itertools.count(1) if (sku := f"SKU-{n:05d}") not in taken)
        products = Product.objects.bulk_create(
            Product(**self.product_fields(next(skus))) for _ in range(count)
        )
        # Multi-table inheritance rules out bulk_create for the digital ones.
        for _ in range(digital):
            fields = self.product_fields(next(skus))
            products.append(
                DigitalProduct.objects.create(
                    **fields,
                    download_url=f"https://downloads.example.com/{fields['sku'].lower()}.zip",
                    file_size_mb=self.rng.randint(1, 900),
                )
            )
        return products

    def product_fields(self, sku: str) -> dict[str, Any]:
        rng = self.rng
        category = rng.choice(list(PRODUCT_WORDS))
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(PRODUCT_WORDS[category])}"
        return {
            "sku": sku,
            "name": name,
            "category": category,
            "price": Decimal(rng.randint(199, 9999)) / 100,
            "attributes": {"weight_g": rng.randint(50, 3000), "color": rng.choice(["red", "blue"])},
            "description": f"A {name.lower()} for every {category.label.lower()} lover.",
        }

    # -- bulk events for benchmarks -------------------------------------------------

    def write_events(self, target: int, users: list[AbstractBaseUser]) -> int:
        """Write ``target`` events: bulk-created orders, then updates of them."""
        before = self.event_high_water_marks()
        customer_ids = list(Customer.objects.values_list("pk", flat=True)[:1000])
        if not customer_ids:
            with as_user(users[0]):
                customer_ids = [
                    Customer.objects.create(name="Bulk Buyer", email="bulk@example.com").pk
                ]

        # One insert event per new order, then update passes over those orders; each
        # updated row writes one update event.
        new_orders = max(1, target // 4)
        authors = itertools.cycle(users)
        order_ids: list[int] = []
        buyers = itertools.cycle(customer_ids)
        for batch in chunks(range(new_orders), EVENTS_BATCH):
            with transaction.atomic(), as_user(next(authors)):
                created = Order.objects.bulk_create(
                    Order(customer_id=next(buyers), notes="bulk") for _ in batch
                )
            order_ids += [order.pk for order in created]

        statuses = itertools.cycle(
            [Order.Status.PAID, Order.Status.SHIPPED, Order.Status.CANCELLED]
        )
        remaining = target - new_orders
        while remaining > 0:
            # Every row of a pass gets a new total, so each update is effective.
            status = next(statuses)
            for batch in chunks(order_ids[:remaining], EVENTS_BATCH):
                with transaction.atomic(), as_user(next(authors)):
                    Order.objects.filter(pk__in=batch).update(
                        status=status, total=F("total") + Decimal("1.00")
                    )
            remaining -= min(remaining, len(order_ids))

        return sum(
            model.audit_event_model.objects.filter(audit_id__gt=mark).count()
            for model, mark in before.items()
        )

    def event_high_water_marks(self) -> dict[type[models.Model], int]:
        """The highest event id of each tracked model, to count what comes after."""
        return {
            model: model.audit_event_model.objects.aggregate(mark=Max("audit_id"))["mark"] or 0
            for model in tracked_models()
        }
