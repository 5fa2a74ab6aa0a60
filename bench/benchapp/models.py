"""Order models measured by ``bench/tracking.py``: a typical web-shop order row.

The same columns three times: untracked, tracked with the defaults (statement-level
triggers) and tracked with row-level triggers. No migrations: the benchmark builds
the schema with ``migrate --run-syncdb`` and audit_app's post_migrate hook installs
the context function and the triggers.
"""

from django.db import models

import audit_app


# Tracked, and following its FollowedOrder rows: that adds the follow index to
# FollowedOrder's event table, whose write cost the "followed" variants measure.
@audit_app.track(follow=["followed_orders"])
class Customer(models.Model):
    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class OrderBase(models.Model):
    id = models.BigAutoField(primary_key=True)
    quantity = models.IntegerField()
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    reference = models.CharField(max_length=100)
    notes = models.TextField()
    is_paid = models.BooleanField(default=False)
    placed_at = models.DateTimeField()
    # Django's default: an indexed FK, DEFERRABLE INITIALLY DEFERRED.
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    data = models.JSONField(default=dict)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.reference


class PlainOrder(OrderBase):
    """Untracked: the baseline every ratio is taken against."""


@audit_app.track()
class TrackedOrder(OrderBase):
    """Tracked with the defaults: statement-level triggers, insert/update/delete events."""


@audit_app.track(level=audit_app.Row)
class RowOrder(OrderBase):
    """Tracked with row-level triggers."""


@audit_app.track()
class FollowedOrder(OrderBase):
    """Tracked like TrackedOrder, and followed from its customer
    (``track(follow=["followed_orders"])`` on Customer): its event table also has the
    follow index on customer."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="followed_orders")
