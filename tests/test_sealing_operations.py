"""Operating sealed history: prunes, keys, bad input, schema changes, locks."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from audit_app import findings, seal_keys
from audit_app.exceptions import SealError, SealKeyError
from audit_app.models import IntegrityRun, Seal, SealChunk
from audit_app.retention import prune
from audit_app.sealing import chain_lock, seal
from audit_app.verification import verify
from tests.sealing_helpers import KEY, OTHER_KEY, as_owner, kinds, widget_event_ids, write_events
from tests.trackapp.models import Invoice, Widget

pytestmark = pytest.mark.django_db(transaction=True)

WIDGET_EVENTS = "trackapp_widgetevent"


def backdate(table: str, ids: list[int], days: int = 40) -> None:
    as_owner(
        f"UPDATE {table} SET audit_created_at = audit_created_at - interval '{days} days' "
        "WHERE audit_id = ANY(%s)",
        params=[ids],
    )


def nothing_written() -> tuple[int, int, int]:
    return Seal.objects.count(), SealChunk.objects.count(), IntegrityRun.objects.count()


# -- retention -----------------------------------------------------------------------------------


def test_pruning_sealed_events_leaves_an_authenticated_record_verify_accepts(settings, capsys):
    settings.AUDIT_SEAL_KEY = KEY
    write_events(widgets=6, invoices=0)
    ids = widget_event_ids()
    backdate(WIDGET_EVENTS, ids[:4])  # ages events before they are sealed: the seal covers it
    seal()
    call_command(
        "audit",
        "prune",
        "--before",
        (timezone.now() - datetime.timedelta(days=1)).date().isoformat(),
    )
    record = Seal.objects.get(kind=Seal.PRUNE)
    assert (record.table_name, record.row_count, record.details["ids"]) == (
        WIDGET_EVENTS,
        4,
        [[ids[0], ids[3]]],
    )
    assert "Warning" not in capsys.readouterr().err
    report = verify()
    assert report.ok, report.findings
    assert report.pruned == 4
    assert "4 events pruned (authenticated prune records)" in report.notes()


def test_deleting_outside_a_prune_or_pruning_without_a_key_is_reported(settings, capsys):
    settings.AUDIT_SEAL_KEY = KEY
    write_events(widgets=6, invoices=0)
    ids = widget_event_ids()
    seal()
    backdate(WIDGET_EVENTS, ids[:2])
    settings.AUDIT_SEAL_KEY = None
    call_command(
        "audit",
        "prune",
        "--before",
        (timezone.now() - datetime.timedelta(days=1)).date().isoformat(),
    )
    assert "verify will report them as deleted" in capsys.readouterr().err
    settings.AUDIT_SEAL_KEY = KEY
    (finding,) = verify().findings
    assert (finding.kind, finding.ids) == (findings.DELETED, ((ids[0], ids[1]),))


def test_without_sealed_history_prune_needs_no_key():
    write_events(widgets=2, invoices=0)
    counts = prune(timezone.now() - datetime.timedelta(days=1))
    assert counts["trackapp.WidgetEvent"] == 0
    assert not Seal.objects.exists()


# -- bad input changes nothing -------------------------------------------------------------------


def test_a_missing_key_is_a_clear_error_and_changes_nothing(settings):
    write_events(widgets=2, invoices=0)
    for command in (["seal"], ["verify"], ["seal", "--emit-head"]):
        with pytest.raises(CommandError, match="No seal key is configured: set AUDIT_SEAL_KEY"):
            call_command("audit", *command)
    assert nothing_written() == (0, 0, 0)


def test_a_wrong_key_is_a_clear_error_and_changes_nothing(settings):
    settings.AUDIT_SEAL_KEY = KEY
    write_events(widgets=2, invoices=0)
    seal()
    before = nothing_written()
    settings.AUDIT_SEAL_KEY = OTHER_KEY
    with pytest.raises(CommandError, match=r"No seal record \(1 in all\) was authenticated by"):
        call_command("audit", "verify")
    write_events(widgets=1, invoices=0)
    with pytest.raises(CommandError, match=r"newest seal record .* is not authenticated"):
        call_command("audit", "seal")
    assert nothing_written() == before


def test_an_unreadable_heads_file_is_a_clear_error_and_changes_nothing(settings, tmp_path):
    settings.AUDIT_SEAL_KEY = KEY
    write_events(widgets=2, invoices=0)
    foreign = tmp_path / "foreign"
    call_command("audit", "seal", "--emit-head", str(foreign))
    foreign.write_text(foreign.read_text().replace("auth=", "auth=00"))
    garbage = tmp_path / "garbage"
    garbage.write_text("not a head\n")
    before = nothing_written()
    with pytest.raises(CommandError, match=r"heads file '.*missing' cannot be read"):
        call_command("audit", "verify", "--heads", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="Line 1 of the heads file is not a head"):
        call_command("audit", "verify", "--heads", str(garbage))
    with pytest.raises(CommandError, match="is not authenticated by the configured key"):
        call_command("audit", "verify", "--heads", str(foreign))
    assert nothing_written() == before


def test_an_unknown_model_is_a_clear_error_and_changes_nothing(settings):
    settings.AUDIT_SEAL_KEY = KEY
    for command in ("seal", "verify"):
        with pytest.raises(CommandError, match=r"Unknown model 'nope\.Nope'"):
            call_command("audit", command, "--model", "nope.Nope")
        with pytest.raises(CommandError, match=r"trackapp\.Color is not tracked"):
            call_command("audit", command, "--model", "trackapp.Color")
    assert nothing_written() == (0, 0, 0)


def test_seal_and_verify_refuse_to_run_inside_a_transaction(settings):
    settings.AUDIT_SEAL_KEY = KEY
    with transaction.atomic():
        with pytest.raises(SealError, match=r"outside transaction\.atomic"):
            seal()
        with pytest.raises(SealError, match=r"outside transaction\.atomic"):
            verify()


def test_one_seal_at_a_time(settings):
    settings.AUDIT_SEAL_KEY = KEY
    write_events(widgets=1, invoices=0)
    from tests.reliability.conftest import database_alias

    with database_alias("other") as other, chain_lock(other.alias, wait=False):
        with pytest.raises(CommandError, match="Another audit seal or audit prune is running"):
            call_command("audit", "seal")
    assert nothing_written() == (0, 0, 0)
    seal()


def test_an_id_sequence_that_caches_values_is_refused(settings):
    settings.AUDIT_SEAL_KEY = KEY
    write_events(widgets=1, invoices=0)
    sequence = "pg_get_serial_sequence('trackapp_widgetevent', 'audit_id')"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sequence}")
        name = cursor.fetchone()[0]
        cursor.execute(f"ALTER SEQUENCE {name} CACHE 20")
    try:
        with pytest.raises(SealError, match=r"caches 20 values.*ALTER SEQUENCE \S+_seq CACHE 1"):
            seal([Widget])
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER SEQUENCE {name} CACHE 1")
    assert nothing_written() == (0, 0, 0)


# -- keys ----------------------------------------------------------------------------------------


def ed25519_files(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / "seal.pem", tmp_path / "seal.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(private), str(public)


def test_ed25519_signs_and_a_verifier_needs_only_the_public_key(settings, tmp_path):
    private, public = ed25519_files(tmp_path)
    settings.AUDIT_SEAL_PRIVATE_KEY_FILE = private
    write_events(widgets=3, invoices=1)
    seal()
    assert set(Seal.objects.values_list("method", flat=True)) == {seal_keys.ED25519}
    settings.AUDIT_SEAL_PRIVATE_KEY_FILE = None
    settings.AUDIT_SEAL_PUBLIC_KEY_FILE = public
    assert verify().ok
    with pytest.raises(SealKeyError, match="No seal key is configured"):
        seal()  # a verifier cannot seal
    as_owner("UPDATE audit_app_seal SET row_count = row_count + 1 WHERE seq = 1")
    assert kinds(verify()) == [findings.RECORD_EDITED]


def test_rotated_keys_verify_old_records_and_seal_with_the_new_one(settings):
    settings.AUDIT_SEAL_KEY = OTHER_KEY
    write_events(widgets=2, invoices=0)
    seal()
    settings.AUDIT_SEAL_KEY = [KEY, OTHER_KEY]
    write_events(widgets=2, invoices=0)
    seal()
    key_ids = list(Seal.objects.order_by("seq").values_list("key_id", flat=True))
    assert key_ids[0] == seal_keys.hmac_key_id(OTHER_KEY.encode())
    assert key_ids[-1] == seal_keys.hmac_key_id(KEY.encode())
    assert verify().ok
    settings.AUDIT_SEAL_KEY = KEY  # the old key retired too early
    report = verify()
    assert kinds(report) == [findings.RECORD_EDITED]
    assert "which is not configured" in str(report.findings[0])


# -- schema changes ------------------------------------------------------------------------------


def test_a_column_renamed_with_its_canonical_key_still_verifies(settings):
    settings.AUDIT_SEAL_KEY = KEY
    write_events(widgets=4, invoices=0)
    seal([Widget])
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {WIDGET_EVENTS} RENAME COLUMN size TO size_v1")
            cursor.execute(f"COMMENT ON COLUMN {WIDGET_EVENTS}.size_v1 IS 'audit:key=size'")
            cursor.execute(f"ALTER TABLE {WIDGET_EVENTS} ADD COLUMN size_note text")
        assert verify([Widget]).ok
        # A value in the added column of an old row is a change of that row.
        target = widget_event_ids()[1]
        as_owner(f"UPDATE {WIDGET_EVENTS} SET size_note = 'x' WHERE audit_id = {target}")
        (finding,) = verify([Widget]).findings
        assert (finding.kind, finding.ids, finding.columns) == (
            findings.CHANGED,
            ((target, target),),
            ("size_note",),
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {WIDGET_EVENTS} DROP COLUMN IF EXISTS size_note")
            cursor.execute(f"COMMENT ON COLUMN {WIDGET_EVENTS}.size_v1 IS NULL")
            cursor.execute(f"ALTER TABLE {WIDGET_EVENTS} RENAME COLUMN size_v1 TO size")


def test_a_column_renamed_without_its_key_is_reported(settings):
    settings.AUDIT_SEAL_KEY = KEY
    write_events(widgets=4, invoices=0)
    seal([Widget])
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {WIDGET_EVENTS} RENAME COLUMN size TO size_v1")
        report = verify([Widget])
        assert kinds(report) == [findings.CHANGED, findings.COLUMN_MISSING]
        missing = next(f for f in report.findings if f.kind == findings.COLUMN_MISSING)
        assert "sealed under the key 'size' is gone" in str(missing)
        assert "'audit:key=size'" in str(missing)
        changed = [f for f in report.findings if f.kind == findings.CHANGED]
        # Every event held a size: each one now reads without it.
        assert {f.columns for f in changed} == {("size",)}
        assert len(changed) == Widget.audit_event_model.objects.count()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {WIDGET_EVENTS} RENAME COLUMN size_v1 TO size")
    assert verify([Widget]).ok


def test_canonical_columns_reads_comments(settings):
    from audit_app.sealing_sql import canonical_columns

    with connection.cursor() as cursor:
        columns = dict(canonical_columns(cursor, "trackapp_invoiceevent"))
        assert columns["status"] == "status" and "audit_id" in columns
        cursor.execute("COMMENT ON COLUMN trackapp_invoiceevent.status IS 'audit:key=state'")
        try:
            assert dict(canonical_columns(cursor, "trackapp_invoiceevent"))["status"] == "state"
        finally:
            cursor.execute("COMMENT ON COLUMN trackapp_invoiceevent.status IS NULL")
        assert canonical_columns(cursor, "no_such_table") == []
    assert Invoice.audit_event_model._meta.db_table == "trackapp_invoiceevent"
