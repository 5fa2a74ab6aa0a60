"""Chain heads kept outside the database: one line per head, written and read back.

A head names the newest record of the chain when it was emitted: its number, its
hash, the key that authenticated it and the authenticator. Whoever rewrites the
chain afterwards (even with the key) cannot change a head already stored elsewhere,
so ``audit verify --heads FILE`` catches the rewrite. A line looks like (one line)::

    audit-seal-head v1 seq=42 hash=9f2c...e1 at=2026-12-06T07:00:00.123456+00:00
        key=hmac-sha256:6c1d09a4e2b7f355 auth=51ab...07

Lines that are empty or start with ``#`` are ignored, so a file of heads can be
appended to by a cron job and annotated by people.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit_app import chain
from audit_app.exceptions import HeadsError

PREFIX = "audit-seal-head"
VERSION = "v1"
_REQUIRED = ("seq", "hash", "key", "auth")


@dataclass(frozen=True)
class Head:
    """One head: the chain's record ``seq`` had hash ``hash`` when it was emitted."""

    seq: int
    hash: bytes
    method: str
    key_id: str
    authenticator: bytes
    at: str = ""
    line: int = 0


def format_head(record: Any) -> str:
    """The head line of a seal record (``audit_app.models.Seal``)."""
    return (
        f"{PREFIX} {VERSION} seq={record.seq} hash={bytes(record.hash).hex()} "
        f"at={chain.timestamp(record.created_at)} key={record.method}:{record.key_id} "
        f"auth={bytes(record.authenticator).hex()}"
    )


def _parse_line(text: str, number: int) -> Head:
    words = text.split()
    if words[:2] != [PREFIX, VERSION]:
        raise HeadsError(
            f"Line {number} of the heads file is not a head (it should start with "
            f"'{PREFIX} {VERSION}'): {text[:80]!r}"
        )
    fields = dict(word.split("=", 1) for word in words[2:] if "=" in word)
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise HeadsError(f"Line {number} of the heads file lacks {', '.join(missing)}.")
    method, _, key_id = fields["key"].partition(":")
    try:
        return Head(
            seq=int(fields["seq"]),
            hash=bytes.fromhex(fields["hash"]),
            method=method,
            key_id=key_id,
            authenticator=bytes.fromhex(fields["auth"]),
            at=fields.get("at", ""),
            line=number,
        )
    except ValueError as exc:
        raise HeadsError(f"Line {number} of the heads file is damaged: {exc}.") from exc


def parse_heads(text: str) -> list[Head]:
    """The heads in ``text``; HeadsError naming the first line that is not one."""
    heads = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            heads.append(_parse_line(line, number))
    if not heads:
        raise HeadsError(
            "The heads file holds no heads; write them with manage.py audit seal --emit-head."
        )
    return heads


def read_heads(path: str) -> list[Head]:
    """The heads in the file ``path``; HeadsError when it cannot be read or holds none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise HeadsError(f"The heads file {path!r} cannot be read ({reason}).") from exc
    return parse_heads(text)


def write_head(record: Any, path: str | None) -> str:
    """Append the head line of ``record`` to ``path`` (created if missing); return it.

    With ``path`` None or "-", nothing is written: the caller prints the line.
    """
    line = format_head(record)
    if path and path != "-":
        try:
            with Path(path).open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError as exc:
            raise HeadsError(
                f"The head cannot be written to {path!r} ({exc.strerror or exc})."
            ) from exc
    return line
