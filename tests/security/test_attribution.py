"""Attribution under hostile metadata: never an event without its context.

PostgreSQL's jsonb refuses NUL characters and NaN. Stock pghistory then wrote events
with a NULL context (research C8). Here a NUL is stored as U+FFFD and the event keeps
its context; NaN or infinity raise ``ContextError`` before anything is written. The
same through the middleware: a URL holding ``%00``, hostile ``X-Request-ID`` headers,
a ``get_context`` that adds raw NUL or NaN, and a revert with a NUL in its reason.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest
from bs4 import BeautifulSoup
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

import audit_app
from audit_app.middleware import AuditContextMiddleware
from audit_app.models import AuditEvent
from shop.models import Customer
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db

UUID_HEX = re.compile(r"^[0-9a-f]{32}$")
HOSTILE_REQUEST_IDS = [
    "bad\x00id",
    "<script>alert(1)</script>",
    "rq-1' OR '1'='1",
    "x" * 10_000,
    "ünïcødé",
    "a b",
    "\u202erq",
]


def widget_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.across(Widget).select_related("context").order_by("event_id"))


def counts() -> tuple[int, int, int]:
    return (
        Widget.objects.count(),
        AuditEvent.objects.across(Widget).count(),
        AuditEvent.objects.count(),
    )


# -- the API ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        {"nested": math.nan},
        [1, math.inf],
        {"deep": [{"x": math.nan}]},
    ],
    ids=["nan", "inf", "-inf", "nested", "list", "deep"],
)
def test_nan_is_refused_before_anything_is_written(django_user_model, value):
    user = django_user_model.objects.create_user("ann")
    before = counts()
    with pytest.raises(audit_app.ContextError, match="NaN or infinity"):
        with audit_app.context(user=user.pk, username="ann", score=value):
            Widget.objects.create(name="never")
    assert counts() == before


def test_nan_added_later_is_refused_and_the_context_stays_as_it_was(django_user_model):
    user = django_user_model.objects.create_user("ann")
    with audit_app.context(user=user.pk, username="ann"):
        with pytest.raises(audit_app.ContextError):
            audit_app.update_context(score=math.nan)
        Widget.objects.create(name="after")
    (event,) = widget_events()
    assert event.context is not None
    assert event.metadata == {"user": user.pk, "username": "ann"}
    assert event.user == user


def test_decimal_nan_is_stored_as_text_and_attributed(django_user_model):
    user = django_user_model.objects.create_user("ann")
    with audit_app.context(user=user.pk, score=Decimal("NaN")):
        Widget.objects.create(name="d")
    (event,) = widget_events()
    assert event.metadata == {"user": user.pk, "score": "NaN"}


def test_nul_is_stored_as_replacement_character_and_the_event_keeps_its_context(
    django_user_model,
):
    user = django_user_model.objects.create_user("ann")
    with audit_app.context(
        user=user.pk,
        username="an\x00n",
        url="/a\x00b/?q=\x00",
        reason="why\x00",
        request_id="rq\x00",
        extra={"k\x00": ["v\x00", {"\x00": "\x00"}]},
    ):
        Widget.objects.create(name="w")
    (event,) = widget_events()
    assert event.context is not None and event.user == user
    assert event.metadata == {
        "user": user.pk,
        "username": "an\ufffdn",
        "url": "/a\ufffdb/?q=\ufffd",
        "reason": "why\ufffd",
        "request_id": "rq\ufffd",
        "extra": {"k\ufffd": ["v\ufffd", {"\ufffd": "\ufffd"}]},
    }
    assert event.username == "an\ufffdn"


# -- through the middleware ----------------------------------------------------------------------


@pytest.fixture
def anywhere(settings):
    settings.ROOT_URLCONF = "tests.security.urls"
    return lambda rest: reverse("test-write-anywhere", args=[rest])


def test_a_url_with_nul_and_hostile_request_ids_are_attributed(client, django_user_model, anywhere):
    user = django_user_model.objects.create_user("dora", password="pw")
    client.force_login(user)
    path = anywhere("a\x00b/")
    assert "%00" in path
    for header in HOSTILE_REQUEST_IDS:
        response = client.post(path + "?q=%00&r=%3Cscript%3E", HTTP_X_REQUEST_ID=header)
        assert response.status_code == 200, header
    events = widget_events()
    assert len(events) == len(HOSTILE_REQUEST_IDS)
    ids = set()
    for event in events:
        meta = event.metadata
        assert event.context is not None and event.user == user
        assert (meta["user"], meta["username"], meta["method"]) == (user.pk, "dora", "POST")
        # The URL as sent (percent-encoded): no NUL reaches jsonb, nothing is lost.
        assert meta["url"] == "/test/write-anywhere/a%00b/?q=%00&r=%3Cscript%3E"
        # Each hostile request id was replaced by a fresh one.
        assert UUID_HEX.match(meta["request_id"]), meta["request_id"]
        ids.add(meta["request_id"])
    assert len(ids) == len(events)


class RawPathContextMiddleware(AuditContextMiddleware):
    """A project's ``get_context`` that adds the raw, decoded path (which may hold NUL)."""

    def get_context(self, request):
        return {**super().get_context(request), "path": request.path}


class NanContextMiddleware(AuditContextMiddleware):
    """A ``get_context`` that adds a float NaN (a broken metric, say)."""

    def get_context(self, request):
        return {**super().get_context(request), "score": math.nan}


def with_context_middleware(settings, dotted: str) -> None:
    settings.MIDDLEWARE = [
        dotted if m == "audit_app.middleware.AuditContextMiddleware" else m
        for m in django_settings.MIDDLEWARE
    ]


def test_a_raw_nul_added_by_get_context_is_stored_as_replacement_character(
    client, django_user_model, anywhere, settings
):
    with_context_middleware(settings, f"{__name__}.RawPathContextMiddleware")
    user = django_user_model.objects.create_user("dora", password="pw")
    client.force_login(user)
    response = client.post(anywhere("a\x00b/"), HTTP_X_REQUEST_ID="rq\x00")
    assert response.status_code == 200
    (event,) = widget_events()
    assert event.user == user
    assert event.metadata["path"] == "/test/write-anywhere/a\ufffdb/"
    assert UUID_HEX.match(event.metadata["request_id"])


def test_nan_from_get_context_fails_the_request_before_anything_is_written(
    django_user_model, anywhere, settings
):
    with_context_middleware(settings, f"{__name__}.NanContextMiddleware")
    client = Client(raise_request_exception=False)
    client.force_login(django_user_model.objects.create_user("dora"))
    before = counts()
    response = client.post(anywhere("x/"))
    assert response.status_code == 500
    assert response.exc_info[0] is audit_app.ContextError
    assert counts() == before


def test_admin_writes_with_hostile_request_metadata_are_attributed(client, django_user_model):
    from django.contrib.auth.models import Permission

    editor = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.set(Permission.objects.filter(content_type__app_label="shop"))
    customer = Customer.objects.create(name="Ann", email="ann@example.org")
    client.force_login(editor)
    url = reverse("admin:shop_customer_change", args=[customer.pk])
    response = client.post(
        url + "?_changelist_filters=q%3D%00",
        {"name": "Ann\x00?", "email": "ann@example.org", "phone": "", "api_token": ""},
        HTTP_X_REQUEST_ID="\x00<script>",
    )
    # The form refuses the NUL in the name (Django's CharField): nothing written.
    assert response.status_code == 200
    assert "Null characters are not allowed" in response.content.decode()
    assert AuditEvent.objects.tracks(customer).count() == 1
    response = client.post(
        url + "?_changelist_filters=q%3D%00",
        {"name": "Ann B", "email": "ann@example.org", "phone": "", "api_token": ""},
        HTTP_X_REQUEST_ID="\x00<script>",
    )
    assert response.status_code == 302
    event = AuditEvent.objects.tracks(customer).order_by("-created_at", "-event_id").first()
    assert event.action == "changed" and event.user == editor
    assert event.metadata["url"] == url + "?_changelist_filters=q%3D%00"
    assert UUID_HEX.match(event.metadata["request_id"])


def test_a_revert_reason_with_nul_is_attributed(client, django_user_model):
    from django.contrib.auth.models import Permission

    editor = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.set(
        Permission.objects.filter(content_type__app_label="shop")
        | Permission.objects.filter(codename="revert_auditevent")
    )
    with audit_app.context(user=editor.pk, username="editor"):
        customer = Customer.objects.create(name="Ann", email="ann@example.org")
        customer.name = "Bob"
        customer.save()
    first = AuditEvent.objects.tracks(customer).order_by("created_at", "event_id").first()
    client.force_login(editor)
    url = reverse("admin:shop_customer_audit_revert", args=[customer.pk, first.id])
    expected = BeautifulSoup(client.post(url).content, "html.parser").select_one(
        "input[name=expected_event_id]"
    )["value"]
    response = client.post(
        url, {"confirm": "yes", "expected_event_id": expected, "reason": "typo\x00fix"}
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.name == "Ann"
    latest = AuditEvent.objects.tracks(customer).order_by("-created_at", "-event_id").first()
    assert latest.action == "reverted" and latest.user == editor
    assert latest.metadata["reason"] == "typo\ufffdfix"
    assert latest.metadata["username"] == "editor"
