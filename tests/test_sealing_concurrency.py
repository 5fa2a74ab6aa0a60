"""Seals while others write: a transaction still open at a seal is never a finding.

Event ids are drawn when a row is written, not when it commits, so a long
transaction commits ids below those a seal has already sealed. Its rows must be
sealed by a later seal, and nothing may be reported meanwhile.
"""

from __future__ import annotations

import random
import threading
import time

import psycopg
import pytest
from django.db import connections, transaction
from django.db.models import Sum

from audit_app import chain
from audit_app.models import Seal, SealChunk
from audit_app.sealing import seal
from audit_app.verification import verify
from tests.reliability.conftest import server_params
from tests.sealing_helpers import KEY, write_events
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db(transaction=True)

INSERT_WIDGET = (
    "INSERT INTO trackapp_widget (name, size, data, secret_token) "
    "VALUES (%s, 1, '{}', '') RETURNING id"
)


@pytest.fixture
def slow():
    """A connection of its own (autocommit), for a transaction held open across seals."""
    conn = psycopg.connect(**server_params(), autocommit=True)
    yield conn
    conn.close()


def open_ids(record: Seal) -> list[int]:
    return chain.ids_of(chain.merge_runs(*(e["runs"] for e in record.details["open"])))


def newest_widget_record() -> Seal:
    return Seal.objects.filter(table_name="trackapp_widgetevent").latest("seq")


def test_a_transaction_open_across_seals_is_sealed_after_it_commits(settings, slow):
    settings.AUDIT_SEAL_KEY = KEY
    write_events(widgets=2, invoices=0)
    slow.execute("BEGIN")
    slow.execute(INSERT_WIDGET, ["slow"])
    (slow_event,) = slow.execute("SELECT max(audit_id) FROM trackapp_widgetevent").fetchone()
    write_events(widgets=3, invoices=0)  # committed: ids above the slow one

    first = seal([Widget]).tables[0]
    assert first.open_ids >= 1 and slow_event in open_ids(newest_widget_record())
    writers = newest_widget_record().details["open"][-1]["writers"]
    assert writers, "the open transaction is named as a possible writer of the gap"
    report = verify()
    assert report.ok and report.pending == 0  # not committed: invisible, not a finding

    seal([Widget])  # still open: the gap stays open
    assert slow_event in open_ids(newest_widget_record())

    slow.execute("COMMIT")
    report = verify()
    assert report.ok, report.findings
    assert report.pending == 1

    third = seal([Widget]).tables[0]
    assert third.late == 1
    assert newest_widget_record().details["late"] == [[slow_event, slow_event]]
    report = verify()
    assert report.ok and report.pending == 0

    seal([Widget])  # every writer of the gaps has ended: closed
    assert open_ids(newest_widget_record()) == []
    assert verify().ok


def _writer(stop: threading.Event, seed: int, errors: list[BaseException]) -> None:
    rng = random.Random(seed)
    try:
        while not stop.is_set():
            with transaction.atomic():
                for _ in range(rng.randint(1, 5)):
                    Widget.objects.create(name=f"t{seed}", size=rng.randint(0, 99))
                time.sleep(rng.random() / 100)  # commit a little later than the insert
                if rng.random() < 0.2:
                    transaction.set_rollback(True)  # drawn ids that never commit
    except BaseException as exc:
        errors.append(exc)
    finally:
        connections.close_all()


def test_sealing_while_writers_run_and_a_long_transaction_commits_after_a_seal(settings, slow):
    settings.AUDIT_SEAL_KEY = KEY
    stop, errors = threading.Event(), []
    slow.execute("BEGIN")
    slow.execute(INSERT_WIDGET, ["long"])
    threads = [threading.Thread(target=_writer, args=(stop, n, errors)) for n in range(2)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(6):
            time.sleep(0.05)
            seal([Widget])
            report = verify([Widget])
            assert report.ok, (round_, report.findings)
            if round_ == 2:
                slow.execute("COMMIT")  # after two seals passed its id
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    seal([Widget])
    seal([Widget])
    report = verify([Widget])
    assert report.ok, report.findings
    events = Widget.audit_event_model.objects.count()
    assert (report.events, report.pending, report.unsealed) == (events, 0, 0)
    # Every event sealed exactly once.
    sealed = SealChunk.objects.filter(table_name="trackapp_widgetevent").aggregate(
        n=Sum("row_count")
    )
    assert sealed["n"] == events
