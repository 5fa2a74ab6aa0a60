"""An event's context as the admin shows it, one line per kind of fact: the version a
revert or restore went back to, the reason, the request's method and URL, its id, the
command. The timeline and the event browser pick and order the lines they show.

Every value goes through ``format_html`` (escaped), as in ``rendering``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from audit_admin.rendering import text, time_html, truncate


@dataclass(frozen=True)
class SourceVersion:
    """The version a revert or restore went back to: when it was written, and by whom."""

    created_at: Any
    username: str | None


def source_versions(metadata: Iterable[dict[str, Any]]) -> dict[str, SourceVersion]:
    """The source versions named by reverts and restores (``audit_source``, an event key
    such as ``shop.OrderEvent:12``), one query per event table."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for meta in metadata:
        label, _sep, event_id = str(meta.get("audit_source") or "").rpartition(":")
        if label and event_id.isdigit() and len(event_id) <= 18:
            wanted[label].add(int(event_id))
    found: dict[str, SourceVersion] = {}
    for label, ids in wanted.items():
        try:
            event_model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        if not hasattr(event_model, "audit_spec"):
            continue
        rows = event_model._default_manager.filter(pk__in=ids).values_list(
            "pk", "audit_created_at", "audit_context__metadata__username"
        )
        for event_id, created_at, username in rows:
            found[f"{label}:{event_id}"] = SourceVersion(created_at, username)
    return found


def action_line(
    meta: dict[str, Any], sources: dict[str, SourceVersion] | None = None
) -> SafeString | None:
    """What a revert or restore went back to: "Reverted to the version of <time> by
    <user>" (``sources`` from ``source_versions``)."""
    action = meta.get("audit_action")
    if action not in ("reverted", "restored"):
        return None
    source = (sources or {}).get(str(meta.get("audit_source")))
    if source is None:
        line = (
            _("Reverted to an earlier version")
            if action == "reverted"
            else _("Restored from an earlier deletion")
        )
        return format_html('<div class="audit-ctx-action">{}</div>', line)
    if action == "reverted":
        line = _("Reverted to the version of {time}")
    else:
        line = _("Restored as it was when deleted on {time}")
    by = format_html(" " + _("by {user}"), user=source.username) if source.username else ""
    return format_html(
        '<div class="audit-ctx-action">{}{}</div>',
        format_html(line, time=time_html(source.created_at, "audit-source-time")),
        by,
    )


def reason_line(meta: dict[str, Any], length: int | None = None) -> SafeString | None:
    """The reason given, cut to ``length`` characters when one is set."""
    if not meta.get("reason"):
        return None
    reason = text(meta["reason"]) if length is None else truncate(meta["reason"], length)
    return format_html('<div class="audit-ctx-reason">Reason: {}</div>', reason)


def url_line(meta: dict[str, Any], length: int) -> SafeString | None:
    """The request's method and URL (cut to ``length`` characters)."""
    if not (meta.get("method") or meta.get("url")):
        return None
    return format_html(
        '<div class="audit-ctx-url"><span class="audit-method">{}</span> {}</div>',
        text(meta.get("method", "")),
        truncate(meta.get("url", ""), length),
    )


def command_line(meta: dict[str, Any]) -> SafeString | None:
    """The management command that made the change."""
    if not meta.get("command"):
        return None
    return format_html(
        '<div class="audit-ctx-command">Command <code>{}</code></div>', text(meta["command"])
    )


def request_line(meta: dict[str, Any]) -> SafeString | None:
    """The request id, unlinked."""
    if not meta.get("request_id"):
        return None
    return format_html(
        '<div class="audit-ctx-request">Request <code>{}</code></div>', text(meta["request_id"])
    )


def join_lines(lines: Iterable[SafeString | None]) -> SafeString:
    """The lines that are there, one per line."""
    return format_html_join("\n", "{}", ((line,) for line in lines if line is not None))
