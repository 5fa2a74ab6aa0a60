"""Hostile text shows as text on every page: never markup, never dropped.

Each payload (``world.PAYLOADS``: a script tag, an attribute break-out with an
``onerror`` image, a right-to-left override, zero-width characters) is written into
field values, JSON keys and values, and the context's username, URL, reason, request
id and command. Every page that shows them is parsed: no element or attribute the
payload could have injected exists, and the payload is in the page's text, exactly.
The same pages in a real browser: ``tests/e2e/test_escaping.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse

import audit_app
from audit_app.models import AuditEvent
from shop.models import Customer
from tests.security.world import PAYLOADS, Hostile, build_hostile

pytestmark = pytest.mark.django_db


def injected(page: BeautifulSoup) -> list[str]:
    """Elements and attributes no page of ours has, but a broken escape would add."""
    found = [
        f"<script> without src: {s}"[:120] for s in page.find_all("script") if not s.get("src")
    ]
    found += [f"<img src={i.get('src')!r}>" for i in page.find_all("img") if i.get("src") == "x"]
    for tag in page.find_all(True):
        found += [f"<{tag.name} {a}=...>" for a in tag.attrs if a.lower().startswith("on")]
    return found


def pages(client: Client, world: Hostile) -> dict[str, Any]:
    """Every page type that shows the hostile values, as the editor sees them."""
    customer, order, product = world.customer, world.order, world.product
    changed = AuditEvent.objects.tracks(customer).order_by("-created_at", "-event_id")[0]
    product_changed = AuditEvent.objects.tracks(product).order_by("-created_at", "-event_id")[0]
    browser = reverse("admin:audit_app_auditevent_changelist")
    return {
        "timeline": client.get(reverse("admin:shop_customer_history", args=[customer.pk])),
        "timeline (long text)": client.get(reverse("admin:shop_order_history", args=[order.pk])),
        "timeline (JSON)": client.get(reverse("admin:shop_product_history", args=[product.pk])),
        "version": client.get(
            reverse("admin:shop_customer_audit_version", args=[customer.pk, changed.id])
        ),
        "version (JSON)": client.get(
            reverse("admin:shop_product_audit_version", args=[product.pk, product_changed.id])
        ),
        "compare": client.get(
            reverse("admin:shop_customer_audit_compare", args=[customer.pk]),
            {"a": world.customer_first, "b": "current"},
        ),
        "revert confirmation": client.post(
            reverse("admin:shop_customer_audit_revert", args=[customer.pk, world.customer_first]),
            {"reason": world.payload},
        ),
        "deleted list": client.get(reverse("admin:shop_customer_audit_deleted")),
        "restore confirmation": client.post(
            reverse("admin:shop_customer_audit_restore", args=[world.deleted_key])
        ),
        "browser": client.get(browser),
        "browser (filtered by the request id)": client.get(browser, {"request_id": world.payload}),
        "bulk revert confirmation": client.post(
            browser,
            {
                "action": "revert_selected",
                ACTION_CHECKBOX_NAME: world.first_keys(),
                "reason": world.payload,
            },
        ),
    }


@pytest.mark.parametrize("name", PAYLOADS)
def test_hostile_text_is_escaped_and_shown_on_every_page(client, users, name):
    payload = PAYLOADS[name]
    world = build_hostile(payload, users.editor)
    client.force_login(users.editor)
    shown = pages(client, world)
    for title, response in shown.items():
        assert response.status_code == 200, title
        page = BeautifulSoup(response.content, "html.parser")
        assert not injected(page), (title, injected(page))
        assert payload in page.get_text(), f"{title}: the payload is not shown as text"

    # Not only somewhere on the page: in each place that shows a value or context key.

    def page(title: str) -> BeautifulSoup:
        return BeautifulSoup(shown[title].content, "html.parser")

    def text(node: Any) -> str:
        assert node is not None
        return node.get_text().strip(" \n")  # template layout, not the value

    timeline = page("timeline").select("table.audit-timeline > tbody > tr")[0]
    assert text(timeline.select_one("tr[data-field=name] .audit-new")) == payload
    assert text(timeline.select_one(".audit-who")) == payload
    assert text(timeline.select_one(".audit-ctx-reason")) == f"Reason: {payload}"
    assert text(timeline.select_one(".audit-ctx-request code")) == payload
    assert text(timeline.select_one(".audit-ctx-url")) == f"POST /x/{payload}"
    notes = page("timeline (long text)").select_one("tr[data-field=notes] ins")
    assert text(notes) == payload
    json_items = page("timeline (JSON)").select("tr[data-field=attributes] li")
    assert any(text(li.select_one("code")) == payload for li in json_items)
    version = page("version")
    assert text(version.select_one(".field-name .readonly")) == payload
    assert payload in text(version.select_one(".audit-version-meta"))
    compare = page("compare").select_one("tr[data-field=name]")
    assert text(compare.select_one(".audit-new")) == payload
    revert = page("revert confirmation")
    assert text(revert.select_one("tr[data-field=name] .audit-old")) == payload
    assert text(revert.select_one("textarea[name=reason]")) == payload
    deleted = page("deleted list").select_one("table.audit-deleted tbody tr")
    assert payload in text(deleted)
    restore = page("restore confirmation").select_one("tr[data-field=name] .audit-new")
    assert text(restore) == payload
    browser = page("browser")
    row = browser.select_one(f"tr[data-event='{world.customer_first}']")
    assert text(row.select_one(".audit-object-link")) == payload
    assert text(row.select_one(".audit-user-filter")) == payload
    assert text(row.select_one(".audit-request-link code")) == payload
    assert text(row.select_one(".audit-ctx-reason")) == f"Reason: {payload}"
    commands = [text(td) for td in browser.select("td.audit-col-user")]
    assert f"command: {payload}" in commands
    search = page("browser (filtered by the request id)").select_one("input[name=request_id]")
    assert search["value"] == payload  # an attribute, parsed back to the same text
    bulk = page("bulk revert confirmation")
    items = bulk.select("section.audit-bulk-item")
    assert len(items) == 3
    assert any(f"by {payload}" in text(i.select_one(".audit-bulk-version")) for i in items)


def test_a_change_of_invisible_characters_still_shows_as_a_change(client, users):
    """A diff cannot hide a change made only of zero-width or bidi characters: the field
    is listed as changed, and the new value keeps the characters."""
    with audit_app.context(user=users.editor.pk, username="editor"):
        customer = Customer.objects.create(name="Ann", email="ann@example.org")
    for sneaky in ("An\u200bn", "An\u200bn\u202e", "\ufeffAn\u200bn\u202e"):
        # One request per save: one change set each on the timeline.
        with audit_app.context(user=users.editor.pk, username="editor", request_id=sneaky):
            customer.name = sneaky
            customer.save()
    client.force_login(users.editor)
    page = BeautifulSoup(
        client.get(reverse("admin:shop_customer_history", args=[customer.pk])).content,
        "html.parser",
    )
    rows = page.select("table.audit-timeline > tbody > tr")
    assert len(rows) == 4
    news = [r.select_one("tr[data-field=name] .audit-new").get_text().strip("\n") for r in rows[:3]]
    assert news == ["\ufeffAn\u200bn\u202e", "An\u200bn\u202e", "An\u200bn"]
    browser = BeautifulSoup(
        client.get(reverse("admin:audit_app_auditevent_changelist")).content, "html.parser"
    )
    summaries = [s.get_text() for s in browser.select(".audit-changes summary")]
    assert summaries.count("Name") == 3
