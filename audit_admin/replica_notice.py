"""The event browser's replica line: the page reads a replica, and how far behind it is.

Shown only when ``AUDIT_READ_DATABASE`` names another database than the primary; the
lag comes from ``audit_app.replicas.replica_lag`` (two small queries).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit_app.replicas import ReplicaLag, replica_lag


@dataclass(frozen=True)
class ReplicaNotice:
    """What the line says (plain text, escaped by the template) and whether it warns."""

    text: str
    behind: bool


def _duration(seconds: float) -> str:
    if seconds < 1:
        return _("less than a second")
    if seconds < 120:
        return ngettext("about %(n)d second", "about %(n)d seconds", int(seconds)) % {"n": seconds}
    minutes = int(seconds // 60)
    return ngettext("about %(n)d minute", "about %(n)d minutes", minutes) % {"n": minutes}


def describe(lag: ReplicaLag) -> ReplicaNotice:
    """The line for a measured ``lag``."""
    where = _("Events on this page are read from the replica “%(alias)s”") % {"alias": lag.alias}
    if lag.caught_up:
        return ReplicaNotice(_("%(where)s, which is up to date.") % {"where": where}, False)
    if lag.bytes_behind is None:
        return ReplicaNotice(
            _("%(where)s; how far it trails the primary could not be measured.") % {"where": where},
            True,
        )
    size = filesizeformat(lag.bytes_behind)
    if lag.seconds_behind is None:
        how_far = _("%(size)s of changes behind the primary") % {"size": size}
    else:
        how_far = _("%(time)s (%(size)s of changes) behind the primary") % {
            "time": _duration(lag.seconds_behind),
            "size": size,
        }
    text = _("%(where)s, %(how_far)s: the newest changes may be missing.") % {
        "where": where,
        "how_far": how_far,
    }
    return ReplicaNotice(text, True)


def replica_notice() -> ReplicaNotice | None:
    """The line for the read database now; None when pages read the primary."""
    lag = replica_lag()
    return None if lag is None else describe(lag)
