"""An order with 1,000 items and about 10,000 events in change sets, for the timeline
benchmark of ``bench/reads.py`` (scenario ``changeset-timeline``).

Written through the triggers, as an admin would: one context (one request) creates the
order with its 1,000 items, then each of 900 saves changes the order's notes and the
quantity of 9 of its items (10 events each, one change set each).
"""

from __future__ import annotations

import random
from decimal import Decimal

from django.db import transaction
from django.db.models import F

import audit_app
from shop.models import Customer, Order, OrderItem, Product

ITEMS = 1_000
SAVES = 900
ITEMS_PER_SAVE = 9


def create_changeset_order(user: object) -> int:
    """Create the order, its items and its history; return the order's key."""
    rng = random.Random(11)
    meta = {"user": user.pk, "username": user.get_username(), "method": "POST"}
    with transaction.atomic(), audit_app.context(**meta, request_id="bench-cs-create"):
        customer = Customer.objects.create(name="Big basket", email="big-basket@example.com")
        order = Order.objects.create(customer=customer, notes="1,000 items")
        product = Product.objects.create(sku="BENCH-CS", name="Bench widget", price=Decimal(1))
        items = OrderItem.objects.bulk_create(
            OrderItem(order=order, product=product, quantity=1) for _ in range(ITEMS)
        )
    keys = [item.pk for item in items]
    for n in range(SAVES):
        with transaction.atomic(), audit_app.context(**meta, request_id=f"bench-cs-{n}"):
            Order.objects.filter(pk=order.pk).update(notes=f"save {n}")
            chosen = rng.sample(keys, ITEMS_PER_SAVE)
            OrderItem.objects.filter(pk__in=chosen).update(quantity=F("quantity") + 1)
    return order.pk
