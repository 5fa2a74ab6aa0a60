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
from django.urls import NoReverseMatch, reverse
from django.utils import formats
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator, capfirst

from audit_app.diff import FieldChange, JsonChange, Related, resolve_related

# Values longer than this are collapsed behind an accessible <details> control.
COLLAPSE_AFTER = 160

MASKED_CELLS = mark_safe('<td colspan="2" class="audit-masked">Changed (value hidden)</td>')
NO_CHANGES = mark_safe('<p class="audit-no-changes">No field changes.</p>')


def text(value: Any) -> Any:
    """``value`` as a template's ``{{ value }}`` shows it (numbers localised), unescaped."""
    return formats.localize(value)


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
class Shown:
    """A FieldChange plus what the viewer may see of it."""

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


class AdminLinks:
    """Change-page URLs of related objects the viewer may open, one permission check
    per model (not per value)."""

    def __init__(self, request: HttpRequest, admin_site: AdminSite) -> None:
        self.request = request
        self.admin_site = admin_site
        self._allowed: dict[type, str | None] = {}

    def _viewname(self, model: type) -> str | None:
        if model not in self._allowed:
            model_admin = self.admin_site._registry.get(model)
            allowed = model_admin is not None and model_admin.has_view_or_change_permission(
                self.request
            )
            opts = model._meta
            self._allowed[model] = (
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change"
                if allowed
                else None
            )
        return self._allowed[model]

    def url(self, ref: Related | None) -> str | None:
        """The change page of a related object, if it exists and the viewer may see it."""
        if ref is None or not ref.exists:
            return None
        viewname = self._viewname(ref.model)
        if viewname is None:
            return None
        try:
            return reverse(viewname, args=[ref.pk])
        except NoReverseMatch:
            return None


def prepare(
    changes: Iterable[FieldChange], request: HttpRequest, admin_site: AdminSite
) -> list[Shown]:
    """Resolve FK labels (one query per related model) and the links the viewer may use."""
    changes = list(changes)
    resolve_related(changes)
    links = AdminLinks(request, admin_site)
    return [Shown(c, links.url(c.related_old), links.url(c.related_new)) for c in changes]


def _word_op(tag: str, old: str, new: str) -> SafeString | str:
    if tag == "equal":
        return escape(old)
    if old and new:
        return format_html("<del>{}</del><ins>{}</ins>", old, new)
    if old:
        return format_html("<del>{}</del>", old)
    return format_html("<ins>{}</ins>", new) if new else ""


def _word_diff(change: Shown) -> SafeString:
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


def _cells(c: Shown) -> SafeString:
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


def _rows(changes: Iterable[Shown]) -> Iterator[tuple[Any, ...]]:
    for c in changes:
        yield c.kind, c.name, capfirst(c.verbose_name), _cells(c)


def render_changes(
    changes: Iterable[Shown], *, compact: bool = False, before: str = "Before", after: str = "After"
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
