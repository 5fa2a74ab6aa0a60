"""AuditContextMiddleware: user, URL, method, IP and request id on every event."""

import pytest
from django.test import RequestFactory, override_settings
from django.urls import reverse

from audit_app.middleware import client_ip, request_id
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db


def event_contexts():
    return [
        e.audit_context.metadata
        for e in Widget.audit_event_model.objects.select_related("audit_context").order_by(
            "audit_id"
        )
    ]


def test_request_metadata_is_recorded(client, django_user_model):
    user = django_user_model.objects.create_user("dora", password="pw")
    client.force_login(user)
    response = client.post(
        reverse("test-write") + "?name=a%25b",
        HTTP_X_REQUEST_ID="req-123",
        REMOTE_ADDR="10.1.2.3",
    )
    assert response.status_code == 200
    (ctx,) = event_contexts()
    assert ctx == {
        "user": user.pk,
        "username": "dora",
        "url": "/test/write/?name=a%25b",
        "method": "POST",
        "ip": "10.1.2.3",
        "request_id": "req-123",
    }


def test_user_assigned_later_in_the_view_is_recorded(client, django_user_model):
    user = django_user_model.objects.create_user("erin")
    client.post(reverse("test-write") + "?login_as=erin")
    before, after = event_contexts()
    assert (before["user"], before["username"]) == (None, None)
    assert (after["user"], after["username"]) == (user.pk, "erin")
    assert before["request_id"] == after["request_id"]


def test_invalid_request_id_is_replaced(client):
    client.post(reverse("test-write"), HTTP_X_REQUEST_ID="bad id with spaces <script>")
    (ctx,) = event_contexts()
    assert len(ctx["request_id"]) == 32 and ctx["request_id"].isalnum()


@pytest.mark.django_db(transaction=True)
def test_async_request(async_client):
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    async def run():
        response = await async_client.get(reverse("test-write-async"))
        contexts = await sync_to_async(event_contexts)()
        await sync_to_async(connections.close_all)()
        return response, contexts

    response, contexts = asyncio.run(run())
    assert response.status_code == 200
    assert (contexts[0]["method"], contexts[0]["url"]) == ("GET", "/test/write-async/")


class TestClientIp:
    def request(self, remote, forwarded=None):
        extra = {"REMOTE_ADDR": remote}
        if forwarded:
            extra["HTTP_X_FORWARDED_FOR"] = forwarded
        return RequestFactory().get("/", **extra)

    def test_forwarded_header_is_ignored_from_untrusted_peers(self):
        assert client_ip(self.request("203.0.113.9", "1.2.3.4")) == "203.0.113.9"

    @override_settings(AUDIT_TRUSTED_PROXIES=["10.0.0.0/8"])
    def test_first_untrusted_hop_from_the_right_is_the_client(self):
        request = self.request("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.5")
        assert client_ip(request) == "198.51.100.7"

    @override_settings(AUDIT_TRUSTED_PROXIES=["10.0.0.0/8"])
    def test_garbage_in_the_chain_stops_the_walk(self):
        assert client_ip(self.request("10.0.0.2", "1.1.1.1, not-an-ip")) == "10.0.0.2"

    @override_settings(AUDIT_REQUEST_ID_HEADER="X-Correlation-ID")
    def test_request_id_header_is_configurable(self):
        request = RequestFactory().get("/", HTTP_X_CORRELATION_ID="abc-1")
        assert request_id(request) == "abc-1"
