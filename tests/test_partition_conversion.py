"""``manage.py audit partition`` on a table with a large history while writers keep
writing, and on a sealed history. These run outside a test's transaction (the command
builds its index CONCURRENTLY, sealing needs transactions of its own), on the event
table of ``trackapp.Reading``, which they make plain again afterwards."""

import re
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from audit_app import installation, partitioning, sql
from audit_app.models import AuditEvent
from tests.partition_helpers import table_of
from tests.sealing_helpers import KEY, as_owner
from tests.trackapp.models import Reading

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = table_of(Reading)
# Events of history converted while the writers write (about 7 s to write, 1.3 s to
# convert here).
HISTORY = 1_000_000
WRITERS = 3


def make_plain():
    """Reading's event table as its migration made it (a test may have partitioned it)."""
    if not partitioning.interval_of(TABLE):
        return
    with connection.schema_editor() as editor:
        editor.execute(f"DROP TABLE {sql.quote(TABLE)} CASCADE")
        editor.create_model(Reading.audit_event_model)
    installation.install_missing_triggers()


@pytest.fixture
def readings(transactional_db):
    make_plain()
    yield
    make_plain()


def seed_history(events):
    """``events`` events over the past two years, written straight into the table as its
    owner may: meters, values, notes, users and contexts as captured ones have them."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {sql.quote(TABLE)} (audit_created_at, audit_label, id, meter, "
            "value, note, audit_user_id, audit_context_id) "
            "SELECT now() - interval '730 days' * (g::float8 / %(n)s), "
            "(ARRAY['insert', 'update', 'update', 'delete'])[g %% 4 + 1], 1000000 + g %% 50000, "
            "'m' || g %% 1000, g, repeat('reading ', g %% 8), NULLIF(g %% 7, 0), "
            "NULLIF(g %% 11, 0) FROM generate_series(1, %(n)s) AS g",
            {"n": events},
        )


def history_digest():
    """Count and an order-free checksum of every seeded event, all columns included."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), sum(hashtextextended(t::text, 0)::numeric) "
            f"FROM {sql.quote(TABLE)} AS t WHERE meter LIKE 'm%%'"
        )
        return cursor.fetchone()


class Writer(threading.Thread):
    """Saves tracked readings, each in its own transaction on its own connection, until
    told to stop; keeps what it saved, the longest save, and any error."""

    def __init__(self, number):
        super().__init__(daemon=True)
        self.meter = f"w{number}"
        self.saved = []
        self.longest = 0.0
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                reading = Reading.objects.create(meter=self.meter, value=len(self.saved))
                self.longest = max(self.longest, time.monotonic() - started)
                self.saved.append(reading.value)
        except Exception as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            connections.close_all()


def writers_events():
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT meter, value, count(*) FROM {sql.quote(TABLE)} "
            "WHERE meter LIKE 'w%%' GROUP BY 1, 2"
        )
        return cursor.fetchall()


@pytest.mark.slow
def test_a_large_history_converts_while_writers_keep_writing(readings, capsys):
    seed_history(HISTORY)
    before = history_digest()
    writers = [Writer(number) for number in range(WRITERS)]
    for writer in writers:
        writer.start()
    time.sleep(0.3)
    started = time.monotonic()
    call_command("audit", "partition", "trackapp.Reading", "--by", "month")
    took = time.monotonic() - started
    time.sleep(0.3)  # writes into the partitioned table too
    for writer in writers:
        writer.stop.set()
    for writer in writers:
        writer.join()
    stall = max(writer.longest for writer in writers)
    with capsys.disabled():
        print(
            f"\n{HISTORY:,} events converted in {took:.2f} s; {WRITERS} writers saved "
            f"{sum(len(w.saved) for w in writers)} readings meanwhile, longest save {stall:.3f} s"
        )
    assert [w.errors for w in writers] == [[]] * WRITERS
    assert partitioning.interval_of(TABLE) == "month"
    assert history_digest() == before
    # Every save is recorded exactly once.
    expected = {(w.meter, value) for w in writers for value in w.saved}
    recorded = writers_events()
    assert {(meter, value) for meter, value, _ in recorded} == expected
    assert all(count == 1 for _, _, count in recorded)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) = count(DISTINCT audit_id) FROM {sql.quote(TABLE)}")
        assert cursor.fetchone()[0]
    last = Reading.objects.filter(meter="w0").latest("pk")
    assert [e.label for e in AuditEvent.objects.tracks(last)] == ["insert"]
    assert all(w.saved for w in writers)
    assert stall < 2.0, f"a writer waited {stall:.2f} s"


def test_a_sealed_history_converted_and_sealed_again_verifies_clean(readings, settings, capsys):
    settings.AUDIT_SEAL_KEY = KEY
    first = [Reading.objects.create(meter="s", value=i) for i in range(20)]
    for reading in first[::2]:
        reading.value += 100
        reading.save()
    call_command("audit", "seal")
    call_command("audit", "partition", "trackapp.Reading", "--by", "week")
    for reading in first[::3]:
        reading.delete()
    Reading.objects.bulk_create([Reading(meter="t", value=i) for i in range(10)])
    call_command("audit", "seal")
    capsys.readouterr()
    call_command("audit", "verify")
    out = capsys.readouterr().out.strip()
    assert re.search(r"verified \d+ seal records, (\d+) events: no findings$", out), out
    events = Reading.audit_event_model.objects.count()
    assert events == 20 + 10 + 7 + 10 and int(re.search(r"(\d+) events", out)[1]) >= events
    assert partitioning.interval_of(TABLE) == "week"
    # The converted history is still checked: one changed event there is found.
    past = partitioning.partitions(TABLE)[0].name
    as_owner(
        f"UPDATE {past} SET value = value + 1 WHERE audit_id = (SELECT min(audit_id) FROM {past})"
    )
    with pytest.raises(CommandError, match="1 finding"):
        call_command("audit", "verify")
