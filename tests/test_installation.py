"""What is installed in the database: functions, triggers, and the status command."""

import re
from pathlib import Path

import pgtrigger
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

import audit_app
from audit_app.installation import our_triggers
from tests.subprocess_pytest import run_pytest
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]


def function_sources():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'pgtrigger_audit%%' "
            "OR proname = 'audit_app_context_id'"
        )
        return dict(cursor.fetchall())


def test_no_installed_trigger_function_catches_exceptions():
    # A caught error per row makes PostgreSQL rescan the deferred-FK queue: bulk
    # inserts in one transaction would get slower the bigger they are.
    sources = function_sources()
    assert "audit_app_context_id" in sources
    assert len(sources) > 20
    for name, source in sources.items():
        assert not re.search(r"EXCEPTION\s+WHEN", source, re.IGNORECASE), name
        assert "_pgtrigger_should_ignore" not in source, name


def test_every_trigger_is_installed_and_current():
    for model, trigger in our_triggers():
        status, enabled = trigger.get_installation_status(model)
        assert (status, enabled) == (pgtrigger.core.INSTALLED, True), trigger.get_uri(model)


def test_status_command_reports_everything(capsys):
    call_command("audit", "status")
    out = capsys.readouterr().out
    assert "audit_app_context_id(): installed" in out
    assert "trackapp.Widget -> trackapp.WidgetEvent" in out
    assert "audit history: all installed" in out


def test_status_command_fails_when_a_trigger_is_missing():
    trigger = next(t for m, t in our_triggers() if m is Widget and t.name == "audit_update")
    trigger.uninstall(Widget)
    with pytest.raises(CommandError, match=r"1 problem\(s\): trackapp.Widget:audit_update"):
        call_command("audit", "status")


def test_backfill_command_runs_under_a_command_context(capsys):
    # disable_tracking, not a raw set_config: the context wrapper may reset
    # audit.disabled before a write (it clears what an earlier write handed over).
    with audit_app.disable_tracking("fixture"), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trackapp_widget (name, size, data, secret_token) VALUES ('a', 0, '{}', '')"
        )
    call_command("audit", "backfill", "trackapp.Widget")
    assert "trackapp.Widget: 1 snapshot event written" in capsys.readouterr().out
    event = Widget.audit_event_model.objects.get(audit_label="snapshot")
    assert event.audit_context.metadata == {"command": "audit"}


def test_backfill_command_refuses_untracked_models():
    with pytest.raises(CommandError, match="not tracked"):
        call_command("audit", "backfill", "trackapp.Color")
    with pytest.raises(CommandError, match="Unknown model"):
        call_command("audit", "backfill", "nope.Nope")


@pytest.mark.slow
def test_database_built_without_migrations_has_function_and_triggers(tmp_path):
    """A test database made by syncdb (no migrations) still captures with context."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import pytest\n"
        "import audit_app\n"
        "from tests.trackapp.models import Widget\n"
        "@pytest.mark.django_db\n"
        "def test_probe():\n"
        "    with audit_app.context(user=None, probe=True):\n"
        "        Widget.objects.create(name='x')\n"
        "    event = Widget.audit_event_model.objects.get()\n"
        "    assert event.audit_context.metadata == {'user': None, 'probe': True}\n"
    )
    result = run_pytest(probe, "tests.settings_nomigrations", "--no-migrations")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
