"""Newest-first pages of ``AuditEvent`` over partitioned event tables: recent partitions first.

A page of the newest events is read from every partition's index, so most of its time
goes to planning the scans of partitions it will never read (about 35 µs each: 10 ms
for 290 partitions). Bounded to the current and the previous interval, the same query
is planned over a few partitions per table; when that bound holds a full page, the
page is exact (every event newer than the bound was a candidate). Otherwise the page
is read unbounded, as before.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.db import models
from django.utils import timezone

from audit_app import partition_sql as psql

NEWEST_FIRST = ("-created_at", "-event_id")
_LENGTH = {"day": 1, "week": 7, "month": 31}


def recent_bound(
    event_models: Iterable[Any], now: datetime.datetime | None = None
) -> datetime.datetime | None:
    """The start of the previous interval of the longest interval the tables are
    partitioned by (None: none is)."""
    intervals = {getattr(m, "audit_partition", None) for m in event_models} - {None}
    if not intervals:
        return None
    interval = max(intervals, key=_LENGTH.__getitem__)
    current = psql.floor(now or timezone.now(), interval)
    return psql.floor(current - datetime.timedelta(days=1), interval)


def _newest_first(queryset: Any) -> bool:
    query = queryset.query
    ordering = tuple(query.order_by) or (
        tuple(queryset.model._meta.ordering) if query.default_ordering else ()
    )
    return ordering == NEWEST_FIRST


def recent_page(queryset: Any, event_models: Iterable[Any]) -> list[Any] | None:
    """The events of a sliced, newest-first ``queryset`` read from recent partitions
    only, when those hold the whole slice; None when they do not, or do not apply."""
    query = queryset.query
    if query.high_mark is None or queryset._iterable_class is not models.query.ModelIterable:
        return None
    bound = recent_bound(event_models)
    if bound is None or not _newest_first(queryset):
        return None
    low, high = query.low_mark, query.high_mark
    bounded = queryset._chain()
    bounded.query.clear_limits()
    bounded = bounded.filter(created_at__gte=bound)
    bounded.query.set_limits(low, high)
    rows = list(bounded._iterable_class(bounded))
    return rows if len(rows) == high - low else None
