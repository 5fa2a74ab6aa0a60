"""Where sealed history stands, cheaply: for the admin and ``audit status``-like views.

The newest seal run and record, the events written since (counted per table above
its high-water mark through the id index: exact where that is cheap, else the
planner's estimate), and the outcome of the newest verification.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import Max

from audit_app import sql
from audit_app.counting import count_rows
from audit_app.models import IntegrityRun, Seal
from audit_app.registry import event_models
from audit_app.sealing_sql import EVENT_ID


@dataclass(frozen=True)
class IntegrityStatus:
    """The state of sealing and verification, as the admin shows it."""

    last_seal_at: datetime.datetime | None
    records: int
    unsealed: int
    unsealed_exact: bool
    last_verify: IntegrityRun | None

    @property
    def sealing(self) -> bool:
        """Whether anything was ever sealed."""
        return self.last_seal_at is not None


def integrity_status(using: str = "default") -> IntegrityStatus:
    """The newest seal and verification, and how many events are not sealed yet."""
    last_run = (
        IntegrityRun.objects.using(using)
        .filter(kind=IntegrityRun.SEAL)
        .order_by("-started_at")
        .first()
    )
    newest = Seal.objects.using(using).order_by("-seq").first()
    high = dict(
        Seal.objects.using(using)
        .filter(kind=Seal.SEAL)
        .values_list("table_name")
        .annotate(Max("last_id"))
    )
    unsealed, exact = 0, True
    for event_model in event_models():
        table = event_model._meta.db_table
        count = count_rows(
            f"SELECT 1 FROM {sql.quote(table)} WHERE {sql.quote(EVENT_ID)} > %s",
            (high.get(table, 0),),
            tables=[table],
            using=using,
        )
        unsealed += count.value
        exact = exact and count.exact
    last_seal = max(
        (t for t in (last_run and last_run.finished_at, newest and newest.created_at) if t),
        default=None,
    )
    return IntegrityStatus(
        last_seal_at=last_seal,
        records=newest.seq if newest else 0,
        unsealed=unsealed,
        unsealed_exact=exact,
        last_verify=IntegrityRun.objects.using(using)
        .filter(kind=IntegrityRun.VERIFY)
        .order_by("-started_at")
        .first(),
    )
