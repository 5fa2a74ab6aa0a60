"""Order models shaped like the ones in research/perf-baseline.md.

The same columns three times: untracked, tracked with the defaults (statement-level
triggers) and tracked with row-level triggers. No migrations: the benchmark builds
the schema with ``migrate --run-syncdb`` and audit_app's post_migrate hook installs
the context function and the triggers.
"""

from django.db import models

import audit_app


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


# Tables of the change-filter experiment (scenarios 1x, 3, 3e, 3p): copies of the
# untracked table with hand-written statement-level UPDATE triggers, created in SQL by
# bench/tracking.py. Each filter is written out there, independent of the one audit_app
# currently generates.


class ExpJoinOrder(OrderBase):
    """(j) LEFT JOIN of the transition tables on the key, per-column IS DISTINCT FROM
    (audit_app's first filter, template version 1)."""

    class Meta:
        managed = False
        db_table = "bench_exp_join"


class ExpExceptAllOrder(OrderBase):
    """(a) changed rows found as ``new EXCEPT ALL old``."""

    class Meta:
        managed = False
        db_table = "bench_exp_except_all"


class ExpWholeRowOrder(OrderBase):
    """(b) LEFT JOIN on the key, whole-row ``o.* IS DISTINCT FROM n.*``."""

    class Meta:
        managed = False
        db_table = "bench_exp_whole_row"


class ExpMinimalOrder(OrderBase):
    """(c) no change filter: every row of the new transition table."""

    class Meta:
        managed = False
        db_table = "bench_exp_minimal"


class ExpHashJoinOrder(OrderBase):
    """(d) filter (j), planned with nested loops and merge joins disabled."""

    class Meta:
        managed = False
        db_table = "bench_exp_hash_join"


class ExpExecuteOrder(OrderBase):
    """(e) filter (j) run through EXECUTE: planned for every statement."""

    class Meta:
        managed = False
        db_table = "bench_exp_execute"
