"""Turn the diff engine's structured changes into HTML for admin pages.

Values are never marked safe here: every one goes through ``format_html`` (the same
escaping as a template's autoescape). This module decides what to show (labels,
links the viewer may follow) and builds the diff table in Python: it is rendered
once per row of the timeline and the event browser, where a template per table
(and per value) cost more than the rest of the page.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.utils import formats, timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit_admin.links import AdminLinks
from audit_app.diff import (
    FieldChange,
    JsonChange,
    Related,
    event_changes,
    resolve_related,
    to_python,
)

# Values longer than this are collapsed behind an accessible <details> control.
COLLAPSE_AFTER = 160

MASKED_CELLS = mark_safe('<td colspan="2" class="audit-masked">Changed (value hidden)</td>')
NO_CHANGES = mark_safe('<p class="audit-no-changes">No field changes.</p>')


def text(value: Any) -> Any:
    """``value`` as a template's ``{{ value }}`` shows it (numbers localised), unescaped."""
    return formats.localize(value)


def _date_and_clock(moment: Any) -> tuple[str, str]:
    local = timezone.localtime(moment)
    return formats.date_format(local, "DATE_FORMAT"), f"{local:%H:%M:%S}"


def when(moment: Any) -> str:
    """A timestamp to the second, in the active time zone: the date in the locale's
    format, the time as ``HH:MM:SS`` (two versions a minute apart must differ)."""
    return "{}, {}".format(*_date_and_clock(moment))


def full_time(moment: Any) -> str:
    """The whole timestamp, microseconds and time zone included (shown on hover)."""
    local = timezone.localtime(moment)
    return f"{formats.date_format(local, 'DATE_FORMAT')}, {local:%H:%M:%S.%f} {local:%Z}"


def time_html(moment: Any, css_class: str = "audit-time") -> SafeString:
    """``when(moment)`` in a ``<time>`` element with the full timestamp on hover (the
    date and the clock each kept on one line when the cell is narrow)."""
    date, clock = _date_and_clock(moment)
    return format_html(
        '<time class="{}" datetime="{}" title="{}"><span class="audit-date">{},</span> '
        '<span class="audit-clock">{}</span></time>',
        css_class,
        timezone.localtime(moment).isoformat(),
        full_time(moment),
        date,
        clock,
    )


def truncate(value: Any, length: int) -> str:
    """What ``{{ value|truncatechars:length }}`` shows, unescaped."""
    string = str(value)
    if len(string) <= length:
        # What Truncator returns for a short text, without its per-call translation
        # lookup of the ellipsis.
        return unicodedata.normalize("NFC", string)
    return Truncator(string).chars(length)


def value_html(value: str, ref: Related | None, url: str | None) -> SafeString:
    """One side of a change: the related object (linked when the viewer may open it),
    else the value, folded behind ``<details>`` when long."""
    if ref is not None:
        if url:
            return format_html('<a href="{}">{}</a>', url, ref.label)
        missing = "" if ref.exists else "audit-missing"
        return format_html('<span class="{}">{}</span>', missing, ref.label)
    if len(value) > COLLAPSE_AFTER:
        return format_html(
            '<details class="audit-collapse"><summary>{}</summary>'
            '<div class="audit-full">{}</div></details>',
            truncate(value, 80),
            value,
        )
    return format_html('<span class="audit-value">{}</span>', value)


@dataclass
class ShownChange:
    """A FieldChange plus the links the viewer may follow from its values."""

    change: FieldChange
    old_url: str | None = None
    new_url: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.change, name)

    @property
    def old_html(self) -> SafeString:
        """The value before, as HTML (see ``value_html``)."""
        return value_html(self.change.old_display, self.change.related_old, self.old_url)

    @property
    def new_html(self) -> SafeString:
        """The value after, as HTML (see ``value_html``)."""
        return value_html(self.change.new_display, self.change.related_new, self.new_url)


def prepare(
    changes: Iterable[FieldChange], request: HttpRequest, admin_site: AdminSite
) -> list[ShownChange]:
    """Resolve FK labels (one query per related model) and the links the viewer may use."""
    changes = list(changes)
    resolve_related(changes)
    links = AdminLinks(request, admin_site)
    return [
        ShownChange(c, links.related_url(c.related_old), links.related_url(c.related_new))
        for c in changes
    ]


def prepare_per_event(
    events: Iterable[Any], request: HttpRequest, admin_site: AdminSite
) -> dict[str, list[ShownChange]]:
    """Each event's changes against its previous version, keyed by event key, with the FK
    labels of every event resolved at once (a page of events: one query per model)."""
    per_event = {e.id: event_changes(e) for e in events}
    shown = prepare([c for changes in per_event.values() for c in changes], request, admin_site)
    by_change = {id(s.change): s for s in shown}
    return {key: [by_change[id(c)] for c in changes] for key, changes in per_event.items()}


def _word_op(tag: str, old: str, new: str) -> SafeString | str:
    if tag == "equal":
        return escape(old)
    if old and new:
        return format_html("<del>{}</del><ins>{}</ins>", old, new)
    if old:
        return format_html("<del>{}</del>", old)
    return format_html("<ins>{}</ins>", new) if new else ""


def _word_diff(change: ShownChange) -> SafeString:
    body = format_html(
        '<div class="audit-word-diff">{}</div>',
        format_html_join("", "{}", ((_word_op(*op),) for op in change.text_ops)),
    )
    if len(change.new_display) > COLLAPSE_AFTER:
        return format_html(
            '<details class="audit-collapse"><summary>Show the text changes</summary>{}</details>',
            body,
        )
    return body


def _json_change(j: JsonChange) -> SafeString:
    if j.op == "added":
        return format_html("added <ins>{}</ins>", text(j.new))
    if j.op == "removed":
        return format_html("removed <del>{}</del>", text(j.old))
    return format_html("<del>{}</del> → <ins>{}</ins>", text(j.old), text(j.new))


def _cells(c: ShownChange) -> SafeString:
    if c.kind == "masked":
        return MASKED_CELLS
    if c.kind == "longtext" and c.old is not None and c.new is not None:
        return format_html('<td colspan="2" class="audit-words">{}</td>', _word_diff(c))
    if c.kind == "json" and c.json_changes and c.old is not None:
        return format_html(
            '<td colspan="2" class="audit-json"><ul class="audit-json-changes">{}</ul></td>',
            format_html_join(
                "",
                '<li class="audit-json-{}"><code>{}</code> {}</li>',
                ((j.op, j.path, _json_change(j)) for j in c.json_changes),
            ),
        )
    return format_html(
        '<td class="audit-old">{}</td><td class="audit-new">{}</td>', c.old_html, c.new_html
    )


def field_label(change: FieldChange | ShownChange) -> SafeString:
    """The field's verbose name; a field the model no longer has says so."""
    if change.retired:
        return format_html(
            '{} <span class="audit-retired">({})</span>',
            capfirst(change.verbose_name),
            _("no longer a field"),
        )
    return format_html("{}", capfirst(change.verbose_name))


def _rows(changes: Iterable[ShownChange]) -> Iterator[tuple[Any, ...]]:
    for c in changes:
        yield c.kind, c.name, field_label(c), _cells(c)


# How many changed field names the summary of a collapsed diff lists.
SUMMARY_FIELDS = 4


def changes_summary(changes: list[ShownChange], *, first: bool) -> str:
    """One line for a diff: the changed fields' names, or how many fields a first event
    recorded."""
    names = [str(c.verbose_name) for c in changes]
    if first:
        return ngettext("%(count)d field recorded", "%(count)d fields recorded", len(names)) % {
            "count": len(names)
        }
    summary = capfirst(", ".join(names[:SUMMARY_FIELDS]))
    more = len(names) - SUMMARY_FIELDS
    if more > 0:
        summary = ngettext("%(names)s and %(count)d more", "%(names)s and %(count)d more", more) % {
            "names": summary,
            "count": more,
        }
    return summary


def collapsed_changes(changes: list[ShownChange], *, first: bool) -> SafeString:
    """A diff folded to one line (its summary) until opened."""
    if not changes:
        return NO_CHANGES
    return format_html(
        '<details class="audit-changes"><summary>{}</summary>{}</details>',
        changes_summary(changes, first=first) or _("Show"),
        render_changes(changes, compact=True),
    )


def render_changes(
    changes: Iterable[ShownChange],
    *,
    compact: bool = False,
    before: str = "Before",
    after: str = "After",
) -> SafeString:
    """The field table of a diff (``compact``: the timeline's short form)."""
    changes = list(changes)
    if not changes:
        return NO_CHANGES
    return format_html(
        '<table class="{}"><thead><tr><th scope="col">Field</th><th scope="col">{}</th>'
        '<th scope="col">{}</th></tr></thead><tbody>{}</tbody></table>',
        "audit-diff audit-diff-compact" if compact else "audit-diff",
        before,
        after,
        format_html_join(
            "",
            '<tr class="audit-field audit-kind-{}" data-field="{}"><th scope="row">{}</th>{}</tr>',
            _rows(changes),
        ),
    )


def csrf_input(request: HttpRequest) -> SafeString:
    """The hidden CSRF field of a POST form (what ``{% csrf_token %}`` renders)."""
    return format_html(
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', get_token(request)
    )


def deleted_label(model: Any, event: Any) -> str:
    """``str()`` of the object as ``event`` recorded it, without touching the database."""
    opts = model._meta.concrete_model._meta
    values = {}
    for name, value in event.data.items():
        try:
            model_field = opts.get_field(name)
        except Exception:  # noqa: S112 - a dropped field: leave it out of the label
            continue
        values[model_field.attname] = to_python(model_field, value)
    try:
        return str(model(**values))
    except Exception:
        return f"{opts.verbose_name} {event.obj_id}"
