"""What the sealing tests share: keys, writing events, and an owner who tampers."""

from __future__ import annotations

import hmac
from typing import Any

from django.db import connection, transaction

import audit_app
from audit_app import chain, seal_keys
from audit_app.models import Seal, SealChunk
from audit_app.sealing import TableEncoding, record_fields
from audit_app.sealing_sql import runs_where, session_settings_sql
from tests.trackapp.models import Invoice, Widget

KEY = "a-test-seal-key-of-more-than-32-bytes!"
OTHER_KEY = "another-key-that-did-not-seal-this-history"


def write_events(widgets: int = 12, invoices: int = 3) -> list[Widget]:
    """Widgets created, some changed, and append-only invoices, in a request context."""
    with audit_app.context(user=None, username="ann", request_id="rq-seal"):
        objs = [Widget.objects.create(name=f"w{i}", size=i) for i in range(widgets)]
        for obj in objs[::3]:
            obj.size += 100
            obj.save()
        for i in range(invoices):
            Invoice.objects.create(amount=i)
    return objs


def widget_event_ids() -> list[int]:
    return list(Widget.audit_event_model.objects.order_by("audit_id").values_list("pk", flat=True))


def as_owner(*statements: str, params: Any = None) -> None:
    """Run ``statements`` as the tables' owner would, with append-only protection off."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            cursor.execute(statement, params)


def attacker_signer(key: str, *, key_id: str | None = None) -> seal_keys.Signer:
    """A signer with ``key`` that may claim another key's id, as a forger would."""
    secret = key.encode()
    return seal_keys.Signer(
        seal_keys.HMAC,
        key_id or seal_keys.hmac_key_id(secret),
        lambda data: hmac.new(secret, data, "sha256").digest(),
    )


def rewrite_chain(signer: seal_keys.Signer) -> None:
    """Recompute every chunk, root, hash, link and authenticator from the tables as they
    are now: what an owner who runs our code can do (with or without the key)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for statement in session_settings_sql():
            cursor.execute(statement)
        previous = chain.GENESIS
        for record in Seal.objects.order_by("seq"):
            if record.kind == Seal.SEAL:
                record.root = _redigest(cursor, record)
            record.prev_hash = previous
            record.method, record.key_id = signer.method, signer.key_id
            record.hash = chain.record_hash(record_fields(record))
            record.authenticator = signer.authenticate(record.hash)
            Seal.objects.filter(seq=record.seq).update(
                root=record.root,
                prev_hash=record.prev_hash,
                method=record.method,
                key_id=record.key_id,
                hash=record.hash,
                authenticator=record.authenticator,
            )
            previous = record.hash


def _redigest(cursor: Any, record: Seal) -> bytes:
    encoding = TableEncoding.read(cursor, record.table_name).with_keys(
        record.details["keys"], record.details["context_keys"]
    )
    hashes = []
    for chunk in SealChunk.objects.filter(seal_id=record.seq).order_by("position"):
        where, params = runs_where(chunk.ids)
        _, rows = next(encoding.chunks(cursor, where, params))
        SealChunk.objects.filter(pk=chunk.pk).update(rows=rows)
        hashes.append(chain.chunk_hash(chunk.ids, rows))
    return chain.root_of(hashes)


def kinds(report: Any) -> list[str]:
    return sorted({finding.kind for finding in report.findings})
