"""Who may open which page of the product, and what each sees.

``MATRIX`` is the rule, one row per view and method, one column per kind of user
(``world.Users``); it runs against every admin URL of the product found in the URL
resolver, for every model administered with ``AuditHistoryMixin``. A view without a
row fails the test: a new view must state its rule here.

Then: revert, restore, bulk revert and export refuse without their permission and
change nothing (the same requests by the editor do change things, so the test can
tell), and the event browser, its filters, estimate, exports and event links never
show a model the user may not view.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit_app.models import AuditEvent
from shop.models import Customer, Order, Product, Tag
from tests.security.conftest import pk_of, product_urls, snapshot, state_changes
from tests.security.world import Shop, Users

pytestmark = pytest.mark.django_db

LOGIN = "login"  # a redirect to the admin's login page

# fmt: off
USERS = ("superuser", "editor", "changer", "viewer", "nobody", "civilian", "anonymous")
MATRIX: dict[tuple[str, str], tuple[Any, ...]] = {
    # (view, method):                 superuser editor changer viewer nobody civilian anonymous
    # Timeline, versions, compare: view or change permission; else 404, as for a missing
    # object (no probing for ids).
    ("history", "GET"):               (200,     200,   200,    200,   404,   LOGIN,   LOGIN),
    ("audit_version", "GET"):         (200,     200,   200,    200,   404,   LOGIN,   LOGIN),
    ("audit_compare", "GET"):         (200,     200,   200,    200,   404,   LOGIN,   LOGIN),
    # Revert: change permission + audit_app.revert_auditevent; a POST (this one shows the
    # confirmation page). GET is refused for everyone who may reach the admin.
    ("audit_revert", "GET"):          (405,     405,   405,    405,   405,   LOGIN,   LOGIN),
    ("audit_revert", "POST"):         (200,     200,   403,    403,   404,   LOGIN,   LOGIN),
    # Deleted objects: view permission. Restore: add permission + revert_auditevent.
    ("audit_deleted", "GET"):         (200,     200,   200,    200,   403,   LOGIN,   LOGIN),
    ("audit_restore", "GET"):         (405,     405,   405,    405,   405,   LOGIN,   LOGIN),
    ("audit_restore", "POST"):        (200,     200,   403,    403,   403,   LOGIN,   LOGIN),
    # The event browser: view permission on at least one tracked model.
    ("auditevent_changelist", "GET"): (200,     200,   200,    200,   403,   LOGIN,   LOGIN),
    # Export: audit_app.export_auditevent (and the browser); a GET, never a POST.
    ("auditevent_export", "GET"):     (200,     200,   403,    403,   403,   LOGIN,   LOGIN),
    ("auditevent_export", "POST"):    (405,     405,   405,    405,   405,   LOGIN,   LOGIN),
    # Username suggestions: the browser's permission (results need view on users).
    ("auditevent_users", "GET"):      (200,     200,   200,    200,   403,   LOGIN,   LOGIN),
    # One event: a redirect to its version page, when its model is visible; else 404.
    ("auditevent_change", "GET"):     (302,     302,   302,    302,   404,   LOGIN,   LOGIN),
}
# fmt: on

URLS = product_urls()


def clients(users: Users) -> dict[str, Client]:
    out = {}
    for name in USERS:
        client = Client(raise_request_exception=False)
        if name != "anonymous":
            client.force_login(getattr(users, name))
        out[name] = client
    return out


def target(url: Any, shop: Shop) -> tuple[str, dict]:
    """The real path of ``url`` and the query its page needs."""
    if url.view.startswith("auditevent"):
        sample = shop.sample(Order)
        args = {"fmt": "csv", "event_key": sample.event_key}
        return url.build(**{p: args[p] for p in url.params}), {}
    sample = shop.sample(url.model)
    args = {
        "object_id": pk_of(sample.obj),
        "event_key": sample.deleted_key if url.view == "audit_restore" else sample.first_key,
    }
    query = {"a": sample.first_key} if url.view == "audit_compare" else {}
    return url.build(**{p: args[p] for p in url.params}), query


def outcome(response: Any) -> Any:
    if response.status_code == 302 and response["Location"].startswith(reverse("admin:login")):
        return LOGIN
    return response.status_code


def test_permission_matrix_of_every_product_view(users, shop):
    by_user = clients(users)
    before = snapshot()
    seen: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    frameable = []
    for url in URLS:
        rows = [key for key in MATRIX if key[0] == url.view]
        assert rows, f"{url}: add its rule to MATRIX in {__file__}"
        path, query = target(url, shop)
        for view, method in rows:
            statuses = []
            for name in USERS:
                response = getattr(by_user[name], method.lower())(path, query)
                statuses.append(outcome(response))
                if response.get("X-Frame-Options") != "DENY":
                    frameable.append((str(url), method, name))
            seen[(str(url), view, method)] = tuple(statuses)
    wrong = {
        key: f"got {got}, the rule is {MATRIX[key[1:]]}"
        for key, got in seen.items()
        if got != MATRIX[key[1:]]
    }
    assert not wrong, "\n".join(f"{k}: {v}" for k, v in wrong.items())
    # Every answer, refusals and redirects included, forbids framing.
    assert frameable == []
    # None of it changed anything (exports write their own log entry).
    assert [t for t in state_changes(before, snapshot()) if t != "django_admin_log"] == []


def test_the_export_links_the_login_redirects_to_come_back():
    """The LOGIN outcome is Django's login with a way back (the admin's own rule)."""
    client = Client()
    url = reverse("admin:audit_app_auditevent_export", args=["csv"])
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


# -- refusals change nothing -------------------------------------------------------------------


def attempts(shop: Shop) -> dict[str, tuple[str, str, dict]]:
    """Confirmed revert, restore, bulk revert, export actions and export: (method, path, data).

    Well formed, without the optional stale-version check: if a permission check were
    missing, each would write (or export)."""
    order, product = shop.sample(Order), shop.sample(Product)
    browser = reverse("admin:audit_app_auditevent_changelist")
    # Other objects than the single revert's, so that each attempt has work to do.
    bulk = [shop.sample(m).first_key for m in (Customer, Tag)]
    return {
        "revert": (
            "post",
            reverse("admin:shop_order_audit_revert", args=[pk_of(order.obj), order.first_key]),
            {"confirm": "yes", "reason": "attempt"},
        ),
        "restore": (
            "post",
            reverse("admin:shop_product_audit_restore", args=[product.deleted_key]),
            {"confirm": "yes"},
        ),
        "bulk revert": (
            "post",
            browser,
            {"action": "revert_selected", ACTION_CHECKBOX_NAME: bulk, "confirm": "yes"},
        ),
        "export CSV": ("get", reverse("admin:audit_app_auditevent_export", args=["csv"]), {}),
        "export JSON Lines": (
            "get",
            reverse("admin:audit_app_auditevent_export", args=["jsonl"]),
            {},
        ),
        "export selected": (
            "post",
            browser,
            {"action": "export_selected_csv", ACTION_CHECKBOX_NAME: bulk},
        ),
    }


@pytest.mark.parametrize("who", ["changer", "viewer", "nobody", "civilian", "anonymous", "cathy"])
def test_revert_restore_bulk_revert_and_export_refuse_and_change_nothing(users, shop, who):
    client = Client(raise_request_exception=False)
    if who != "anonymous":
        client.force_login(getattr(users, who))
    for what, (method, path, data) in attempts(shop).items():
        if who == "cathy" and what.startswith("export"):
            continue  # she may export (customers only: see below)
        before = snapshot()
        response = getattr(client, method)(path, data)
        assert not getattr(response, "streaming", False), (who, what)
        assert response.status_code in (302, 403, 404), (who, what, response.status_code)
        if response.status_code == 302:
            # Back to the login page, or to the browser saying the action is not available.
            assert response["Location"].split("?")[0] in (reverse("admin:login"), path)
        assert state_changes(before, snapshot()) == [], (who, what)


def test_the_same_attempts_by_the_editor_do_change_things(users, shop):
    """The control: with the permissions, each attempt writes or exports."""
    client = Client()
    client.force_login(users.editor)
    for what, (method, path, data) in attempts(shop).items():
        before = snapshot()
        response = getattr(client, method)(path, data)
        if what.startswith("export"):
            assert response.status_code == 200 and response.streaming, what
            b"".join(response.streaming_content)
            assert state_changes(before, snapshot()) == ["django_admin_log"], what
        else:
            assert response.status_code == 302, (what, response.status_code)
            assert "audit_app_context" in state_changes(before, snapshot()), what


# -- what a user may not view is nowhere -------------------------------------------------------


def csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200 and response.streaming
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def jsonl_rows(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200 and response.streaming
    lines = b"".join(response.streaming_content).decode().splitlines()
    return [json.loads(line) for line in lines]


def row_keys(response: Any) -> list[str]:
    page = BeautifulSoup(response.content, "html.parser")
    return [tr["data-event"] for tr in page.select("#result_list > tbody > tr[data-event]")]


def test_a_customers_only_viewer_sees_no_other_model_anywhere(users, shop, monkeypatch):
    """cathy may view customers (and export): no Order event, nor any other model's, in
    rows, filter choices, the estimate, CSV and JSON Lines exports, or event links."""
    customer_keys = set(AuditEvent.objects.across(Customer).values_list("id", flat=True))
    order = shop.sample(Order)
    assert customer_keys and AuditEvent.objects.across(Order).exists()
    client = Client()
    client.force_login(users.cathy)
    browser = reverse("admin:audit_app_auditevent_changelist")
    export = reverse("admin:audit_app_auditevent_export", args=["csv"])
    export_jsonl = reverse("admin:audit_app_auditevent_export", args=["jsonl"])

    # Rows and filter choices.
    response = client.get(browser)
    assert set(row_keys(response)) == customer_keys
    page = BeautifulSoup(response.content, "html.parser")
    choices = [o["value"] for o in page.select("select[name=model] option") if o["value"]]
    assert choices == ["shop.customer"]
    # The total, once the rows no longer fit on a page: planned and counted over
    # customers only (a few events are counted exactly).
    monkeypatch.setattr(admin.site._registry[AuditEvent], "list_per_page", 1)
    with CaptureQueriesContext(connection) as queries:
        page = BeautifulSoup(client.get(browser).content, "html.parser")
    assert page.select_one(".audit-total").text.split()[0] == str(len(customer_keys))
    explain = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("EXPLAIN")]
    assert explain
    event_tables = [m.audit_event_model._meta.db_table for m in (Order, Product)]
    everything = " ".join(q["sql"] for q in queries.captured_queries)
    assert not [t for t in event_tables if t in everything]
    monkeypatch.undo()

    # Filters that name other models or their objects find nothing of them.
    assert client.get(browser, {"model": "shop.order"}).status_code == 400
    assert row_keys(client.get(browser, {"q": f"shop.order:{order.obj.pk}"})) == []
    assert set(row_keys(client.get(browser, {"request_id": "s-seed"}))) == customer_keys

    # Exports, whole and filtered, in both formats.
    for params in ({}, {"request_id": "s-seed"}, {"sort": "oldest"}):
        rows = csv_rows(client.get(export, params))
        assert {r["model"] for r in rows} == {"shop.Customer"}, params
        assert len(rows) == len(customer_keys), params
        records = jsonl_rows(client.get(export_jsonl, params))
        assert {r["model"] for r in records} == {"shop.Customer"}, params
    assert client.get(export, {"model": "shop.order"}).status_code == 400
    assert csv_rows(client.get(export, {"q": f"shop.order:{order.obj.pk}"})) == []
    selected = client.post(
        browser,
        {"action": "export_selected_csv", ACTION_CHECKBOX_NAME: [order.event_key, order.first_key]},
    )
    assert csv_rows(selected) == []

    # Event links and the order's own pages: not found, as if they did not exist.
    change = reverse("admin:audit_app_auditevent_change", args=[order.event_key])
    assert client.get(change).status_code == 404
    own = next(iter(customer_keys))
    assert client.get(reverse("admin:audit_app_auditevent_change", args=[own])).status_code == 302
    assert client.get(reverse("admin:shop_order_history", args=[order.obj.pk])).status_code == 404
    version = reverse("admin:shop_order_audit_version", args=[order.obj.pk, order.first_key])
    assert client.get(version).status_code == 404
    assert client.get(reverse("admin:shop_order_audit_deleted")).status_code == 403
    # Username suggestions need view permission on users: none.
    users_url = reverse("admin:audit_app_auditevent_users")
    assert json.loads(client.get(users_url, {"term": "e"}).content) == {"results": []}
    assert LogEntry.objects.filter(user=users.cathy).count() == 8  # each export recorded


def test_the_superuser_sees_every_model(users, shop):
    """The control for the test above: the same pages list the other models too."""
    client = Client()
    client.force_login(users.superuser)
    browser = reverse("admin:audit_app_auditevent_changelist")
    models_shown = {key.split(":")[0] for key in row_keys(client.get(browser, {"sort": "oldest"}))}
    assert {"shop.customerevent", "shop.orderevent", "shop.productevent"} <= models_shown
    export = reverse("admin:audit_app_auditevent_export", args=["csv"])
    assert {"shop.Customer", "shop.Order"} <= {r["model"] for r in csv_rows(client.get(export))}
