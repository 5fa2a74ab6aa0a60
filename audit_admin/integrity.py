"""The event browser's integrity line: when history was last sealed and verified.

Shown to users with ``audit_app.verify_auditevent``; the facts come from
``audit_app.seal_status`` (no count over whole event tables).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import formats
from django.utils.safestring import SafeString

from audit_admin.rendering import time_html
from audit_app.seal_status import integrity_status


@dataclass(frozen=True)
class IntegrityBox:
    """What the integrity line says, ready for the template."""

    last_seal: SafeString | None
    unsealed: str
    unsealed_count: int
    verify_state: str  # "ok", "failed" or "never"
    last_verify: SafeString | None
    findings: int


def integrity_box(using: str = "default") -> IntegrityBox:
    """The integrity line's facts, read now."""
    status = integrity_status(using)
    count = formats.number_format(status.unsealed, force_grouping=True)
    run = status.last_verify
    return IntegrityBox(
        last_seal=time_html(status.last_seal_at, "audit-integrity-time")
        if status.sealing
        else None,
        unsealed=count if status.unsealed_exact else f"about {count}",
        unsealed_count=status.unsealed,
        verify_state="never" if run is None else "ok" if run.ok else "failed",
        last_verify=time_html(run.finished_at, "audit-integrity-time") if run else None,
        findings=run.findings if run else 0,
    )
