"""Sealed history: every tampering of an owner is reported precisely, a clean one is not.

Each tampering runs as the tables' owner with the append-only protection off
(``session_replication_role = replica``), as a DBA, a migration or an attacker with
superuser rights could.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from audit_app import chain, findings
from audit_app.models import IntegrityRun, Seal
from audit_app.sealing import record_fields, seal
from audit_app.verification import verify
from tests.sealing_helpers import (
    KEY,
    OTHER_KEY,
    as_owner,
    attacker_signer,
    kinds,
    rewrite_chain,
    widget_event_ids,
    write_events,
)
from tests.trackapp.models import Invoice, Widget

pytestmark = pytest.mark.django_db(transaction=True)

WIDGET_EVENTS = "trackapp_widgetevent"


@pytest.fixture
def sealed(settings):
    """Events in two tables (one append-only), sealed with the test key."""
    settings.AUDIT_SEAL_KEY = KEY
    objs = write_events()
    run = seal()
    return {"widgets": objs, "run": run, "ids": widget_event_ids()}


def test_a_clean_history_verifies_and_the_run_is_recorded(sealed, capsys):
    run = sealed["run"]
    assert run.events == len(sealed["ids"]) + 3
    assert {t.table: t.rows for t in run.tables if t.rows} == {
        WIDGET_EVENTS: len(sealed["ids"]),
        "trackapp_invoiceevent": 3,
    }
    report = verify(jobs=2)
    assert report.ok, report.findings
    assert (report.events, report.pending, report.unsealed) == (run.events, 0, 0)
    call_command("audit", "verify")
    out = capsys.readouterr().out
    assert out.strip().endswith(
        f"verified {run.head.seq} seal records, {run.events} events: no findings"
    )
    assert list(IntegrityRun.objects.values_list("kind", "ok", "findings")) == [
        ("seal", True, 0),
        ("verify", True, 0),
        ("verify", True, 0),
    ]


def test_one_changed_column_of_one_event(sealed):
    target = sealed["ids"][5]
    as_owner(f"UPDATE {WIDGET_EVENTS} SET size = size + 1 WHERE audit_id = {target}")
    report = verify()
    (finding,) = report.findings
    assert (finding.kind, finding.table, finding.ids, finding.columns) == (
        findings.CHANGED,
        WIDGET_EVENTS,
        ((target, target),),
        ("size",),
    )
    assert str(finding) == f"{WIDGET_EVENTS}: event {target} changed (columns size)"
    with pytest.raises(CommandError, match="1 finding"):
        call_command("audit", "verify")
    assert IntegrityRun.objects.filter(kind="verify").latest("started_at").ok is False


def test_several_columns_of_one_event(sealed):
    target = sealed["ids"][0]
    as_owner(
        f"UPDATE {WIDGET_EVENTS} SET name = 'x', audit_label = 'delete' WHERE audit_id = {target}"
    )
    (finding,) = verify().findings
    assert (finding.ids, finding.columns) == (((target, target),), ("audit_label", "name"))


def test_the_context_row_an_event_points_at(sealed):
    referenced = Widget.audit_event_model.objects.get(pk=sealed["ids"][4]).audit_context_id
    as_owner(
        'UPDATE audit_app_context SET metadata = metadata || \'{"username": "eve"}\' '
        f"WHERE id = {referenced}"
    )
    report = verify()
    pointing = [
        *Widget.audit_event_model.objects.filter(audit_context_id=referenced).values_list(
            "pk", flat=True
        ),
        *Invoice.audit_event_model.objects.filter(audit_context_id=referenced).values_list(
            "pk", flat=True
        ),
    ]
    assert sorted(f.ids[0][0] for f in report.findings) == sorted(pointing)
    assert {f.columns for f in report.findings} == {("audit:context",)}
    assert "its context row changed" in str(report.findings[0])


def test_a_range_of_deleted_events(sealed):
    ids = sealed["ids"]
    as_owner(f"DELETE FROM {WIDGET_EVENTS} WHERE audit_id BETWEEN {ids[3]} AND {ids[7]}")
    (finding,) = verify().findings
    assert (finding.kind, finding.ids) == (findings.DELETED, ((ids[3], ids[7]),))
    assert str(finding) == f"{WIDGET_EVENTS}: 5 events deleted (ids {ids[3]}-{ids[7]})"


def test_a_forged_event_inserted_into_a_sealed_range(settings):
    settings.AUDIT_SEAL_KEY = KEY
    write_events(widgets=3, invoices=0)
    with transaction.atomic():  # draws an event id, then rolls back: a gap
        Widget.objects.create(name="rolled back")
        transaction.set_rollback(True)
    write_events(widgets=3, invoices=0)
    ids = widget_event_ids()
    gap = next(i for i in range(ids[0], ids[-1]) if i not in ids)
    seal()
    seal()  # nobody could still be writing the gap: closed now
    for forged in (gap, -5):
        as_owner(
            f"INSERT INTO {WIDGET_EVENTS} (audit_id, audit_created_at, audit_label, id, name, "
            f"size, data, secret_token) VALUES ({forged}, now(), 'update', 1, 'forged', 0, "
            "'{}', '')"
        )
    (finding,) = verify().findings
    assert (finding.kind, finding.table, finding.ids) == (
        findings.INSERTED,
        WIDGET_EVENTS,
        ((-5, -5), (gap, gap)),
    )
    assert f"2 events inserted into sealed ranges (ids -5, {gap})" in str(finding)


def test_an_edited_seal_record(sealed):
    head = sealed["run"].head.seq
    as_owner(f"UPDATE audit_app_seal SET row_count = row_count - 1 WHERE seq = {head}")
    (finding,) = verify().findings
    assert (finding.kind, finding.seq) == (findings.RECORD_EDITED, head)
    assert "its content was changed after it was sealed" in str(finding)
    # The forger also stores the matching hash: the authenticator gives it away.
    record = Seal.objects.get(seq=head)
    rehashed = chain.record_hash(record_fields(record))
    as_owner("UPDATE audit_app_seal SET hash = %s WHERE seq = %s", params=[rehashed, head])
    (finding,) = verify().findings
    assert (finding.kind, finding.seq) == (findings.RECORD_EDITED, head)
    assert "its authenticator does not match" in str(finding)


def test_edited_digests_and_a_deleted_record(sealed):
    as_owner("UPDATE audit_app_seal_chunk SET rows = rows || '\\x00'::bytea WHERE seal_id = 1")
    report = verify()
    assert [(f.kind, f.seq) for f in report.findings] == [(findings.RECORD_EDITED, 1)]
    assert "stored digests no longer match its root" in str(report.findings[0])
    as_owner(
        "UPDATE audit_app_seal_chunk SET rows = substr(rows, 1, length(rows) - 1) WHERE seal_id = 1"
    )
    write_events(widgets=2, invoices=0)
    seal()
    as_owner("DELETE FROM audit_app_seal WHERE seq = 2")
    report = verify()
    assert kinds(report) == [findings.CHAIN_BROKEN]
    assert str(report.findings[0]) == "seal record 2 is missing (deleted)"
    # The events that record sealed are now covered by no record.
    lost = Seal.objects.get(seq=1)  # the other table's record is still there
    assert any(
        "no seal record covers" in str(f) and f.table != lost.table_name for f in report.findings
    )


def test_the_whole_chain_recomputed_without_the_key(sealed):
    target = sealed["ids"][2]
    as_owner(f"UPDATE {WIDGET_EVENTS} SET name = 'rewritten' WHERE audit_id = {target}")
    newest = Seal.objects.latest("seq")
    # The forger keeps the key id, recomputes every digest, root, hash and link.
    rewrite_chain(attacker_signer(OTHER_KEY, key_id=newest.key_id))
    report = verify()
    assert kinds(report) == [findings.RECORD_EDITED]
    assert {f.seq for f in report.findings} == set(Seal.objects.values_list("seq", flat=True))
    assert all("authenticator does not match" in str(f) for f in report.findings)


def test_the_whole_chain_recomputed_with_the_key_is_caught_by_an_outside_head(sealed, tmp_path):
    heads = tmp_path / "heads.log"
    call_command("audit", "seal", "--emit-head", str(heads))
    target = sealed["ids"][2]
    as_owner(f"UPDATE {WIDGET_EVENTS} SET name = 'rewritten' WHERE audit_id = {target}")
    rewrite_chain(attacker_signer(KEY))
    # With the key, a rewrite is consistent: only a head kept outside shows it.
    assert verify().ok
    report = verify(heads=_heads(heads))
    (finding,) = report.findings
    assert finding.kind == findings.HEAD_MISMATCH
    assert "the chain was rewritten after the head was kept" in str(finding)
    with pytest.raises(CommandError, match="1 finding"):
        call_command("audit", "verify", "--heads", str(heads))


def test_a_truncated_chain_is_caught_by_an_outside_head(sealed, tmp_path):
    heads = tmp_path / "heads.log"
    write_events(widgets=0, invoices=2)
    call_command("audit", "seal", "--emit-head", str(heads))
    newest = Seal.objects.latest("seq")
    assert (newest.table_name, newest.row_count) == ("trackapp_invoiceevent", 2)
    # Remove the newest record, its digests and its events: the rest still verifies.
    as_owner(
        f"DELETE FROM trackapp_invoiceevent WHERE audit_id >= {newest.first_id}",
        f"DELETE FROM audit_app_seal_chunk WHERE seal_id = {newest.seq}",
        f"DELETE FROM audit_app_seal WHERE seq = {newest.seq}",
    )
    assert verify().ok
    (finding,) = verify(heads=_heads(heads)).findings
    assert finding.kind == findings.HEAD_MISMATCH
    assert f"the chain ends at record {newest.seq - 1}" in str(finding)


def _heads(path):
    from audit_app.heads import read_heads

    return read_heads(str(path))


def test_emitted_heads_are_lines_appended_to_a_file_or_printed(sealed, tmp_path, capsys):
    heads = tmp_path / "heads.log"
    call_command("audit", "seal", "--emit-head", str(heads))
    write_events(widgets=1, invoices=0)
    call_command("audit", "seal", "--emit-head", str(heads))
    capsys.readouterr()
    call_command("audit", "seal", "--emit-head")
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    lines = heads.read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith("audit-seal-head v1 seq=") for line in lines)
    assert printed == lines[-1]  # nothing new since: the same head
    assert verify(heads=_heads(heads)).ok


def test_rows_added_to_a_table_after_a_seal_are_unsealed_not_findings(sealed):
    write_events(widgets=4, invoices=0)
    report = verify()
    assert report.ok and report.unsealed >= 4
    assert any("written since the last seal" in note for note in report.notes())


def test_verify_since_checks_only_the_newer_batches(sealed):
    as_owner(f"UPDATE {WIDGET_EVENTS} SET size = 777 WHERE audit_id = {sealed['ids'][0]}")
    write_events(widgets=2, invoices=0)
    newer = seal().started_at
    report = verify(since=newer)
    assert report.ok and report.events == 3  # two creates, and a change of the first
    assert not verify().ok


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_verify_shows_progress_on_a_terminal(sealed):
    err = Terminal()
    call_command("audit", "verify", stderr=err)
    progress = err.getvalue()
    total = sealed["run"].events
    assert f"\r[{'#' * 30}] {total:,}/{total:,} events" in progress
