"""The event browser's integrity line: last seal, events not sealed yet, last verification."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from django.contrib.auth.models import Permission
from django.urls import reverse

from audit_app.models import AuditEvent, IntegrityRun
from audit_app.sealing import seal
from audit_app.verification import verify
from shop.models import Customer
from tests.sealing_helpers import KEY, as_owner

pytestmark = pytest.mark.django_db(transaction=True)


def browser(client):
    response = client.get(reverse("admin:audit_app_auditevent_changelist"))
    assert response.status_code == 200
    return BeautifulSoup(response.content, "html.parser")


def integrity_line(client):
    return browser(client).select_one("#audit-integrity")


def text(node) -> str:
    return " ".join(node.get_text(" ").split())


@pytest.fixture
def auditor(django_user_model):
    """Staff who may view the shop and see the history's integrity."""
    user = django_user_model.objects.create_user("auditor", password="auditor", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="shop", codename__startswith="view_")
        | Permission.objects.filter(codename="verify_auditevent")
    )
    return user


def test_the_line_needs_the_verify_permission(client, auditor, viewer):
    client.force_login(viewer)
    assert integrity_line(client) is None
    client.force_login(auditor)
    line = integrity_line(client)
    events = AuditEvent.objects.count()  # creating the users wrote some
    assert text(line) == f"Never sealed · {events} events not sealed yet · Never verified"
    assert "audit-integrity-never" in line["class"]


def test_the_line_follows_seals_writes_and_verifications(client, auditor, settings):
    settings.AUDIT_SEAL_KEY = KEY
    client.force_login(auditor)
    seal()
    Customer.objects.create(name="b", email="b@example.org")
    Customer.objects.create(name="c", email="c@example.org")
    line = integrity_line(client)
    assert line.select_one(".audit-integrity-seal time")["datetime"]
    assert text(line.select_one(".audit-integrity-unsealed")) == "2 events not sealed yet"
    assert text(line.select_one(".audit-integrity-verify")) == "Never verified"
    seal()
    assert verify().ok
    line = integrity_line(client)
    assert text(line.select_one(".audit-integrity-unsealed")) == "0 events not sealed yet"
    verified = line.select_one(".audit-integrity-verify")
    assert text(verified).startswith("Verified") and text(verified).endswith(": no findings")
    assert "audit-integrity-ok" in line["class"]

    as_owner("UPDATE shop_customerevent SET name = 'z'")
    assert not verify().ok
    line = integrity_line(client)
    assert "audit-integrity-failed" in line["class"]
    assert text(line.select_one(".audit-integrity-verify strong")) == "failed: 2 findings"
    assert IntegrityRun.objects.filter(kind="verify").count() == 2
