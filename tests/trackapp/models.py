"""Models that exercise the corners of tracking; used by the tests only."""

import uuid

from django.db import models

import audit_app


class Color(models.Model):
    name = models.CharField(max_length=20)


@audit_app.track()
class Widget(models.Model):
    """Statement level (the default), every field, a deferred FK."""

    name = models.CharField(max_length=50)
    size = models.IntegerField(default=0)
    color = models.ForeignKey(Color, null=True, on_delete=models.SET_NULL)
    data = models.JSONField(default=dict)
    secret_token = models.CharField(max_length=40, blank=True)


@audit_app.track(level=audit_app.Row, model_name="RowWidgetHistory")
class RowWidget(models.Model):
    """Row level for every tracker."""

    name = models.CharField(max_length=50)
    size = models.IntegerField(default=0)
    color = models.ForeignKey(Color, null=True, on_delete=models.SET_NULL)
    secret_token = models.CharField(max_length=40, blank=True)


class Reversed(models.Field):
    """A custom field rebuilt through deconstruct() in the event model."""

    def __init__(self, *args, marker="x", **kwargs):
        self.marker = marker
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["marker"] = self.marker
        return name, path, args, kwargs

    def db_type(self, connection):
        return "text"


@audit_app.track(
    audit_app.InsertEvent(),
    audit_app.UpdateEvent(condition=audit_app.AnyChange("status")),
    audit_app.UpdateEvent("big_jump", condition=audit_app.Q(new__amount__gt=1000)),
    audit_app.ManualEvent("note"),
    fields=["status", "amount", "code"],
    append_only=True,
)
class Invoice(models.Model):
    """Field subset, conditions, manual events, append-only history, custom fields."""

    uid = models.UUIDField(primary_key=True, default=uuid.uuid4)
    status = models.CharField(max_length=10, default="draft")
    amount = models.IntegerField(default=0)
    code = Reversed(marker="y", default="")
    comment = models.TextField(blank=True)


@audit_app.track(audit_app.InsertEvent(), audit_app.UpdateEvent(), constrain_obj=True)
class Note(models.Model):
    """A constrained object reference: events are deleted with their object."""

    text = models.TextField()


@audit_app.track(masked=())
class Credential(models.Model):
    """Opts out of masking: the token is stored in clear on purpose."""

    token = models.CharField(max_length=40)


@audit_app.track()
class Label(models.Model):
    name = models.CharField(max_length=20, unique=True)

    def __str__(self):
        return self.name


@audit_app.track(follow=["lines", "stickers"])
class Basket(models.Model):
    """Followed relations: inline rows and an explicit through table.

    (An auto-created through table is followed by the shop's Product.tags: Django
    cannot build its tracked proxy without migrations, which a test database does.)
    """

    name = models.CharField(max_length=50)
    stickers = models.ManyToManyField(
        Label, blank=True, through="BasketSticker", related_name="stuck_on"
    )

    def __str__(self):
        return self.name


@audit_app.track()
class BasketLine(models.Model):
    basket = models.ForeignKey(Basket, on_delete=models.CASCADE, related_name="lines")
    name = models.CharField(max_length=50)
    quantity = models.IntegerField(default=1)
    code = models.CharField(max_length=20, null=True, blank=True, unique=True)

    def __str__(self):
        return f"{self.quantity} x {self.name}"


@audit_app.track()
class GiftLine(BasketLine):
    """A concrete-inheritance child of a followed row: its key lives in the parent table."""

    message = models.CharField(max_length=50, blank=True)


@audit_app.track()
class BasketSticker(models.Model):
    basket = models.ForeignKey(Basket, on_delete=models.CASCADE)
    label = models.ForeignKey(Label, on_delete=models.CASCADE)
    corner = models.CharField(max_length=10, default="top")


@audit_app.track()
class Reading(models.Model):
    """Written by many writers while its history becomes a partitioned table
    (tests/test_partition_conversion.py converts it outside a test's transaction and
    makes it plain again: no other test may use it)."""

    meter = models.CharField(max_length=20)
    value = models.IntegerField(default=0)
    note = models.TextField(blank=True)
