"""Export events from the admin: a streamed download, recorded in the admin log.

The rows and their formatting come from ``audit_app.export`` (COPY-based, formula
guarded in SQL, masked values never exported); this module only wraps them in a
``StreamingHttpResponse`` and records who exported what.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import EmptyResultSet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit_app import export
from audit_app.counting import RowCount
from audit_app.models import AuditEvent

#: The admin log's action flag of an export. Not ADDITION, CHANGE or DELETION (1-3): an
#: export changes nothing, so Recent actions lists it without a change's icon.
EXPORT = 4

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/jsonl; charset=utf-8",
}


def _chunks(queryset: Any, fmt: str) -> Iterator[bytes]:
    if queryset.query.is_empty():
        # A filter that can match nothing (an unknown user): the header, no SQL at all.
        if fmt == "csv":
            yield (",".join(export.COLUMNS) + "\n").encode()
        return
    yield from (export.stream_csv(queryset) if fmt == "csv" else export.stream_jsonl(queryset))


def filename(fmt: str) -> str:
    return f"audit-events-{timezone.now().strftime('%Y%m%d-%H%M%S')}.{fmt}"


def record_export(request: HttpRequest, queryset: Any, fmt: str, what: str) -> LogEntry:
    """Write an admin log entry naming who exported what (the filter) and how much (a
    count when cheap, else about how much)."""
    try:
        count = RowCount(0, exact=True) if queryset.query.is_empty() else queryset.row_count()
    except EmptyResultSet:
        count = RowCount(0, exact=True)
    amount = ngettext("%(count)s event", "%(count)s events", count.value) % {"count": count.value}
    if not count.exact:
        amount = _("about %(amount)s") % {"amount": amount}
    return LogEntry.objects.create(
        user_id=request.user.pk,
        content_type=ContentType.objects.get_for_model(AuditEvent),
        # An export concerns many events, none in particular.
        object_id=None,
        object_repr=f"Export of audit events ({fmt.upper()})",
        action_flag=EXPORT,
        change_message=_("Exported %(what)s as %(format)s, %(amount)s.")
        % {"what": what, "format": fmt.upper(), "amount": amount},
    )


def export_response(
    model_admin: Any, request: HttpRequest, queryset: Any, fmt: str, *, what: str
) -> StreamingHttpResponse:
    """A download of ``queryset`` as ``fmt`` (csv or jsonl), streamed in constant memory."""
    record_export(request, queryset, fmt, what)
    response = StreamingHttpResponse(_chunks(queryset, fmt), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename(fmt)}"'
    # An export is a snapshot of the moment: never serve it from a cache.
    response["Cache-Control"] = "no-store"
    return response
