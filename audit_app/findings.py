"""What ``audit verify`` found: findings (evidence of tampering) and the report around them."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.utils.translation import ngettext

#: An event's content differs from its sealed digest.
CHANGED = "changed"
#: Sealed events are gone without a prune record covering them.
DELETED = "deleted"
#: Events sit in a sealed range (or below it) that no seal covers.
INSERTED = "inserted"
#: A seal record's fields or authenticator do not match.
RECORD_EDITED = "record_edited"
#: Records are missing from the chain or no longer link.
CHAIN_BROKEN = "chain_broken"
#: The chain does not match a head kept outside the database.
HEAD_MISMATCH = "head_mismatch"
#: An event table that holds sealed events is gone.
TABLE_MISSING = "table_missing"
#: A column that was sealed is gone (dropped, or renamed without its key).
COLUMN_MISSING = "column_missing"

KINDS = (
    CHANGED,
    DELETED,
    INSERTED,
    RECORD_EDITED,
    CHAIN_BROKEN,
    HEAD_MISMATCH,
    TABLE_MISSING,
    COLUMN_MISSING,
)


@dataclass(frozen=True)
class Finding:
    """One piece of evidence that sealed history was changed after it was sealed."""

    kind: str
    message: str
    table: str = ""
    seq: int | None = None
    ids: tuple[tuple[int, int], ...] = ()
    columns: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message


def events_text(count: int) -> str:
    """ "1 event", "25 events"."""
    return ngettext("%(count)d event", "%(count)d events", count) % {"count": count}


@dataclass
class Report:
    """The outcome of a verification: findings, and what was checked besides."""

    started_at: datetime.datetime
    findings: list[Finding] = field(default_factory=list)
    records: int = 0
    heads: int = 0
    events: int = 0
    pruned: int = 0
    pending: int = 0
    unsealed: int = 0
    unsealed_exact: bool = True
    finished_at: datetime.datetime | None = None

    @property
    def ok(self) -> bool:
        """Whether nothing was found."""
        return not self.findings

    def summary(self) -> str:
        """One line: what was checked and what came out."""
        checked = f"{self.records} seal records, {events_text(self.events)}" + (
            f", {self.heads} heads" if self.heads else ""
        )
        if self.ok:
            return f"verified {checked}: no findings"
        found = ngettext("%(count)d finding", "%(count)d findings", len(self.findings)) % {
            "count": len(self.findings)
        }
        return f"checked {checked}: {found}"

    def notes(self) -> list[str]:
        """What is not a finding but worth knowing: pruned, pending and unsealed events."""
        notes = []
        if self.pruned:
            notes.append(f"{events_text(self.pruned)} pruned (authenticated prune records)")
        if self.pending:
            notes.append(
                f"{events_text(self.pending)} written by transactions still open at the last "
                "seal, not sealed yet (the next seal seals them)"
            )
        if self.unsealed:
            about = "" if self.unsealed_exact else "about "
            notes.append(f"{about}{events_text(self.unsealed)} written since the last seal")
        return notes
