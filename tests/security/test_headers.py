"""Every page of the product may not be framed, and its downloads are attachments.

``X-Frame-Options`` comes from Django's ``XFrameOptionsMiddleware`` (in the example
project's settings, as in every project made by ``startproject``): the product's
views must not opt out of it (``xframe_options_exempt``), on any answer, errors
included. The Content-Security-Policy proof is a browser test:
``tests/e2e/test_csp.py``.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from shop.models import Order
from tests.security.conftest import pk_of, product_urls
from tests.security.test_permission_matrix import target

pytestmark = pytest.mark.django_db

URLS = product_urls()


def answers(client: Client, url, shop) -> dict[str, object]:
    """The page itself (both methods), with a malformed filter, and for a missing object
    or event."""
    path, query = target(url, shop)
    out = {
        "GET": client.get(path, query),
        "POST": client.post(path, query),
        "bad filter": client.get(path, {**query, "created_at_after": "not a date"}),
    }
    if url.params:
        missing = url.build(**dict.fromkeys(url.params, "999999999"))
        out["missing"] = client.get(missing)
    return out


def test_every_product_page_forbids_framing(users, shop):
    """Each URL's page, malformed filter and missing object, as a superuser. (The
    permission matrix checks the header on every user's answers, refusals included,
    and the hostile-input sweep on thousands of error answers.)"""
    client = Client(raise_request_exception=False)
    client.force_login(users.superuser)
    statuses = set()
    for url in URLS:
        for what, response in answers(client, url, shop).items():
            statuses.add(response.status_code)
            assert response.get("X-Frame-Options") == "DENY", (str(url), what)
            assert response.get("X-Content-Type-Options") == "nosniff", (str(url), what)
    assert statuses >= {200, 302, 400, 404, 405}, statuses


def test_the_change_form_with_the_history_button_forbids_framing(client, users, shop):
    client.force_login(users.editor)
    obj = shop.sample(Order).obj
    response = client.get(reverse("admin:shop_order_change", args=[pk_of(obj)]))
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("csv", "text/csv"), ("jsonl", "application/jsonl")]
)
def test_exports_are_uncached_attachments(client, users, shop, fmt, content_type):
    client.force_login(users.editor)
    response = client.get(reverse("admin:audit_app_auditevent_export", args=[fmt]))
    assert response.status_code == 200 and response.streaming
    b"".join(response.streaming_content)
    assert response["Content-Type"] == f"{content_type}; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert "no-store" in [d.strip() for d in response["Cache-Control"].split(",")]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_test_only_csp_middleware_sends_the_policy_when_set(client, users, settings):
    """tests/security/csp.py, which tests/e2e/test_csp.py switches on."""
    client.force_login(users.viewer)
    url = reverse("admin:audit_app_auditevent_changelist")
    assert "Content-Security-Policy" not in client.get(url)
    settings.TEST_CONTENT_SECURITY_POLICY = "default-src 'self'"
    assert client.get(url)["Content-Security-Policy"] == "default-src 'self'"
