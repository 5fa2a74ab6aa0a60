"""Data of the security proofs: users of every permission set, a shop with history,
and hostile values in every place the admin shows (for the client and browser tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import models

import audit_app
from audit_app.models import AuditEvent
from shop.models import Customer, DigitalProduct, Order, OrderItem, Product, Tag

# -- users ------------------------------------------------------------------------------------

AUDIT_PERMS = ("revert_auditevent", "export_auditevent")


@dataclass
class Users:
    """Logins (password = username) of each permission set of the proofs."""

    superuser: Any
    editor: Any  # staff; every shop permission, revert and export
    changer: Any  # staff; every shop permission, but neither revert nor export
    viewer: Any  # staff; view-only on the shop
    nobody: Any  # staff without any permission
    civilian: Any  # active but not staff, with every permission the editor has
    cathy: Any  # staff; may view customers only, and export

    def all(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def make_users() -> Users:
    user_model = get_user_model()

    def make(username: str, perms: Any = None, *, staff: bool = True) -> Any:
        user = user_model.objects.create_user(username, password=username, is_staff=staff)
        if perms is not None:
            user.user_permissions.set(perms)
        return user

    shop_perms = Permission.objects.filter(content_type__app_label="shop")
    audit_perms = Permission.objects.filter(codename__in=AUDIT_PERMS)
    return Users(
        superuser=user_model.objects.create_superuser("root", password="root"),
        editor=make("editor", shop_perms | audit_perms),
        changer=make("changer", shop_perms),
        viewer=make("viewer", shop_perms.filter(codename__startswith="view_")),
        nobody=make("nobody"),
        civilian=make("civilian", shop_perms | audit_perms, staff=False),
        cathy=make(
            "cathy", Permission.objects.filter(codename__in=["view_customer", "export_auditevent"])
        ),
    )


# -- the shop ---------------------------------------------------------------------------------


@dataclass
class Sample:
    """What the sweep needs of one model: a live object, its latest and first event,
    and a deleted object's delete event."""

    obj: Any
    event_key: str  # the live object's latest event
    first_key: str  # the live object's first event (a version to revert to)
    deleted_key: str  # the delete event of another object of the model
    other_key: str  # an event of that other (deleted) object


@dataclass
class Shop:
    samples: dict[type[models.Model], Sample] = field(default_factory=dict)

    def sample(self, model: type[models.Model]) -> Sample:
        assert model in self.samples, (
            f"{model._meta.label} has AuditHistoryMixin but the security fixture creates no "
            "object of it: add it to tests/security/conftest.py::_make_objects."
        )
        return self.samples[model]


# One change per model, for a second event: (field, new value).
CHANGES: dict[type[models.Model], Any] = {
    Customer: lambda obj, name: ("phone", f"{name} 555"),
    Tag: lambda obj, name: ("name", obj.name + "-x"),
    Product: lambda obj, name: ("description", f"{name} (changed)"),
    DigitalProduct: lambda obj, name: ("description", f"{name} (changed)"),
    Order: lambda obj, name: ("notes", f"{name} (changed)"),
    OrderItem: lambda obj, name: ("quantity", 2),
}


def _make_objects(name: str, marker: str) -> dict[type[models.Model], tuple[Any, Any]]:
    """A live and a to-be-deleted object of each administered shop model."""
    out: dict[type[models.Model], tuple[Any, Any]] = {}
    customers = [
        Customer.objects.create(name=f"{name} {i}", email=f"{marker}{i}@example.org")
        for i in range(2)
    ]
    out[Customer] = (customers[0], customers[1])
    out[Tag] = tuple(Tag.objects.create(name=f"{marker}-tag-{i}") for i in range(2))
    out[Product] = tuple(
        Product.objects.create(sku=f"{marker}-p{i}", name=f"{name} product {i}", price=3)
        for i in range(2)
    )
    out[DigitalProduct] = tuple(
        DigitalProduct.objects.create(
            sku=f"{marker}-d{i}", name=f"{name} ebook {i}", price=4, download_url="https://x.test/"
        )
        for i in range(2)
    )
    orders = [Order.objects.create(customer=customers[0], notes=name) for _ in range(2)]
    out[Order] = tuple(orders)
    out[OrderItem] = tuple(
        OrderItem.objects.create(order=orders[0], product=out[Product][0]) for _ in range(2)
    )
    return out


def build_shop(name: str = "Sample", marker: str = "s", actor: Any = None) -> Shop:
    """Objects of every administered model, each created and changed, plus a deleted one."""
    shop = Shop()
    user_pk = actor.pk if actor is not None else None
    username = actor.get_username() if actor is not None else "seed"
    meta = {"user": user_pk, "username": username, "request_id": f"{marker}-seed"}
    with audit_app.context(**meta):
        made = _make_objects(name, marker)
        made[Product][0].tags.add(made[Tag][0])
    # A second change set (same request id): the first events stay versions of their own
    # to revert to, as change sets are reverted whole.
    with audit_app.context(**meta, step="edit"):
        for model, objs in made.items():
            for obj in objs:
                field, value = CHANGES[model](obj, name)
                setattr(obj, field, value)
                obj.save()
        for model, (live, gone) in made.items():
            gone_pk = gone.pk
            gone_first = AuditEvent.objects.tracks(gone).order_by("created_at", "event_id")[0].id
            gone.delete()
            deleted = (
                AuditEvent.objects.across(model)
                .deleted()
                .filter(obj_id=str(gone_pk))
                .without_diffs()
                .get()
            )
            events = list(
                AuditEvent.objects.across(model).tracks(live).order_by("created_at", "event_id")
            )
            shop.samples[model] = Sample(
                obj=live,
                event_key=events[-1].id,
                first_key=events[0].id,
                deleted_key=deleted.id,
                other_key=gone_first,
            )
    return shop


# -- hostile values -----------------------------------------------------------------------------

PAYLOADS = {
    "script": "<script>alert(1)</script>",
    "img": '"><img src=x onerror=alert(1)>',
    "rtl": "invoice\u202efdp.exe",  # RIGHT-TO-LEFT OVERRIDE
    "zero-width": "ad\u200bmin\ufeff!",  # ZERO WIDTH SPACE, ZERO WIDTH NO-BREAK SPACE
}


@dataclass
class Hostile:
    """A shop whose values and context metadata all carry ``payload``."""

    payload: str
    actor: Any
    customer: Customer  # name changed from "plain" to the payload
    order: Order  # notes (long text) changed to the payload
    product: Product  # description and JSON attributes (keys too) hold the payload
    deleted_key: str  # the delete event of a customer named the payload
    customer_first: str  # the customer's first event (its name was "plain")

    def first_keys(self) -> list[str]:
        """The first event of the customer, the order and the product (bulk revert)."""
        return [
            AuditEvent.objects.tracks(obj).order_by("created_at", "event_id")[0].id
            for obj in (self.customer, self.order, self.product)
        ]


def build_hostile(payload: str, actor: Any, marker: str = "h") -> Hostile:
    """Write the payload into field values, JSON keys and values, and into every context
    key the admin shows: username, URL, reason, request id (set directly: the middleware
    would replace a request id like these), and a command."""
    metadata = {
        "user": actor.pk,
        "username": payload,
        "url": f"/x/{payload}",
        "method": "POST",
        "reason": payload,
        "request_id": payload,
    }
    # Created in a context of their own: the timeline shows the changes below as
    # change sets of their own, diffed against these versions.
    with audit_app.context(**{**metadata, "step": "created"}):
        customer = Customer.objects.create(name="plain", email=f"{marker}1@example.org")
        customer_first = AuditEvent.objects.tracks(customer).get().id
        order = Order.objects.create(customer=customer, notes="plain")
        product = Product.objects.create(
            sku=f"{marker}-1", name="plain", price=1, attributes={"kind": "plain"}
        )
    with audit_app.context(**metadata):
        customer.name = payload
        customer.save()
        order.notes = payload
        order.save()
        product.description = payload
        product.attributes = {"kind": payload, payload: payload}
        product.save()
        gone = Customer.objects.create(name=payload, email=f"{marker}2@example.org")
        gone_pk = gone.pk
        gone.delete()
    with audit_app.context(command=payload):
        Tag.objects.create(name=f"{marker}-tag")
    deleted = (
        AuditEvent.objects.across(Customer).deleted().filter(obj_id=str(gone_pk)).without_diffs()
    )
    return Hostile(
        payload=payload,
        actor=actor,
        customer=customer,
        order=order,
        product=product,
        deleted_key=deleted.get().id,
        customer_first=customer_first,
    )
