"""The global event browser: filters, visibility, count-free pages, export, bulk revert."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from bs4 import BeautifulSoup
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import audit_app
from audit_admin.browser_filters import EventFilterSet
from audit_app.models import AuditEvent
from audit_app.registry import tracked_models
from shop.models import Customer, Order, Product, Tag

pytestmark = pytest.mark.django_db

HOSTILE_NAME = "<script>alert('x')</script>"
HOSTILE_REQUEST = '=HYPERLINK("http://evil.example","click")'


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def browser_url() -> str:
    return reverse("admin:audit_app_auditevent_changelist")


def export_url(fmt: str = "csv") -> str:
    return reverse("admin:audit_app_auditevent_export", args=[fmt])


def row_keys(response) -> list[str]:
    return [
        tr["data-event"] for tr in soup(response).select("#result_list > tbody > tr[data-event]")
    ]


def keys(queryset) -> list[str]:
    return list(queryset.order_by("-created_at", "-event_id").values_list("id", flat=True))


def no_counts(ctx) -> None:
    counted = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert not counted, counted


def parse_csv(response) -> list[dict[str, str]]:
    assert response.streaming
    data = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(data)))


def staff(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, password=username, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root")


@pytest.fixture
def cathy(django_user_model):
    """May view customers only, and export."""
    user = django_user_model.objects.create_user("cathy", password="cathy", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_customer", "export_auditevent"])
    )
    return user


@pytest.fixture
def shop(editor, django_user_model):
    """Events by three actors: editor (rq-1), alice (a hostile request id), a command."""
    alice = django_user_model.objects.create_user("alice", is_staff=True)
    with audit_app.context(
        user=editor.pk, username="editor", request_id="rq-1", url="/admin/x/", method="POST"
    ):
        customer = Customer.objects.create(
            name=HOSTILE_NAME, email="ann@example.org", api_token="tok-secret-1"
        )
        order = Order.objects.create(customer=customer, notes="first")
        second = Order.objects.create(customer=customer, notes="second")
    with audit_app.context(
        user=alice.pk, username="alice", request_id=HOSTILE_REQUEST, reason="typo fix"
    ):
        order.status = "paid"
        order.save()
        second.status = "paid"
        second.save()
        customer.api_token = "tok-secret-2"
        customer.save()
    with audit_app.context(command="import_tags"):
        tag = Tag.objects.create(name="sale")
    return {"customer": customer, "order": order, "second": second, "tag": tag, "alice": alice}


# -- the page --------------------------------------------------------------------------------


def test_events_newest_first_with_every_column(client, root, shop):
    client.force_login(root)
    response = client.get(browser_url())
    assert response.status_code == 200
    assert row_keys(response) == keys(AuditEvent.objects.all())
    page = soup(response)
    order = shop["order"]
    update = AuditEvent.objects.tracks(order).order_by("-created_at").first()
    row = page.select_one(f"tr[data-event='{update.id}']")
    assert row.select_one(".audit-action").text == "changed"
    assert row.select_one(".audit-user-filter").text == "alice"
    assert row.select_one(".audit-user-filter")["href"] == f"{browser_url()}?user=alice"
    assert row.select_one(".audit-model-link")["href"] == f"{browser_url()}?model=shop.order"
    assert row.select_one(".audit-object-link")["href"] == reverse(
        "admin:shop_order_change", args=[order.pk]
    )
    assert row.select_one(".audit-history-link")["href"] == reverse(
        "admin:shop_order_history", args=[order.pk]
    )
    version = reverse("admin:shop_order_audit_version", args=[order.pk, update.id])
    assert row.select_one("td.audit-col-created_at a")["href"] == version
    assert row.select_one(".audit-changes summary").text == "Status"
    assert row.select_one("tr[data-field=status] .audit-new").text.strip() == "Paid"
    assert row.select_one(".audit-request-link code").text.startswith("=HYPERLINK")
    assert row.select_one(".audit-ctx-reason").text == "Reason: typo fix"
    tag_row = page.select_one(f"tr[data-event='{AuditEvent.objects.tracks(shop['tag']).get().id}']")
    assert tag_row.select_one("td.audit-col-user").text.strip() == "command: import_tags"
    total = len(keys(AuditEvent.objects.all()))
    assert page.select_one(".audit-total").text == f"{total} events"
    # Every row has a checkbox for the actions, named as Django's actions.js expects.
    boxes = page.select(f"input.action-select[name={ACTION_CHECKBOX_NAME}]")
    assert len(boxes) == total and page.select_one("#action-toggle")


def test_everything_shown_is_escaped_and_masked_values_never_appear(client, root, shop):
    client.force_login(root)
    response = client.get(browser_url())
    page = soup(response)
    assert not [s for s in page.find_all("script") if "alert" in (s.string or "")]
    assert b"<script>alert" not in response.content
    labels = [a.text for a in page.select(".audit-object-link")]
    assert HOSTILE_NAME in labels  # shown as text
    assert b"tok-secret" not in response.content
    customer_update = AuditEvent.objects.tracks(shop["customer"]).order_by("-created_at").first()
    row = page.select_one(f"tr[data-event='{customer_update.id}']")
    assert row.select_one("tr[data-field=api_token] .audit-masked")


def test_no_query_counts_rows_and_a_page_costs_a_fixed_number_of_queries(
    client, root, shop, monkeypatch, settings
):
    # Exact counts off: only estimates, as for a history far above the limit (small or
    # unanalyzed histories are counted: tests/test_counting.py).
    settings.AUDIT_EXACT_COUNT_LIMIT = 0
    client.force_login(root)
    client.get(browser_url())  # warm caches (content types, permissions)
    monkeypatch.setattr(admin.site._registry[AuditEvent], "list_per_page", 3)
    with CaptureQueriesContext(connection) as first:
        response = client.get(browser_url())
    assert len(row_keys(response)) == 3
    # More than one page: the total is the planner's estimate ("about"), or the rows seen
    # when the planner guesses fewer ("at least"), never a count.
    assert re.match(
        r"^(about|at least) [0-9,]+ events$", soup(response).select_one(".audit-total").text
    )
    assert any(q["sql"].startswith("EXPLAIN") for q in first.captured_queries)
    with CaptureQueriesContext(connection) as second:
        client.get(browser_url(), {"page": "2", "user": "alice", "sort": "oldest"})
        client.get(browser_url(), {"model": "shop.order", "action": "changed"})
        client.get(export_url(), {"model": "shop.order"})
    no_counts(first)
    no_counts(second)
    # Twice the events on the page, not twice the queries: nothing runs per row.
    monkeypatch.setattr(admin.site._registry[AuditEvent], "list_per_page", 6)
    with CaptureQueriesContext(connection) as bigger:
        client.get(browser_url())
    assert len(bigger.captured_queries) <= len(first.captured_queries) + 1


def test_pagination_keeps_filters_and_order(client, root, shop, monkeypatch):
    monkeypatch.setattr(admin.site._registry[AuditEvent], "list_per_page", 2)
    client.force_login(root)
    response = client.get(browser_url(), {"model": "shop.order", "sort": "oldest"})
    expected = list(reversed(keys(AuditEvent.objects.across(Order))))
    assert row_keys(response) == expected[:2]
    page = soup(response)
    nxt = page.select_one(".audit-page-next")["href"]
    assert "model=shop.order" in nxt and "sort=oldest" in nxt and "page=2" in nxt
    assert row_keys(client.get(browser_url() + nxt)) == expected[2:4]
    export = page.select_one(".audit-export-csv")["href"]
    assert export.startswith(export_url()) and "sort=oldest" in export
    assert "model=shop.order" in export and "page=" not in export
    newest = page.select_one(".audit-sort-newest")["href"]
    assert "model=shop.order" in newest and "sort" not in newest


# -- filters -----------------------------------------------------------------------------------


# The shop's data models (the fixtures' users are tracked too, as shop.StaffUser).
SHOP = (Customer, Order, Product, Tag)


def filtered(data: dict, models=None) -> tuple[EventFilterSet, list[str]]:
    filterset = EventFilterSet(
        data,
        queryset=AuditEvent.objects.across(*SHOP),
        models=tracked_models() if models is None else models,
        context_keys=("request_id", "url", "method", "reason", "command"),
    )
    assert filterset.is_valid(), filterset.errors
    return filterset, keys(filterset.qs)


def test_filter_by_user_name_or_id_through_the_context_index(shop, editor):
    _, found = filtered({"user": "alice"})
    assert found == keys(AuditEvent.objects.by_user(shop["alice"]))
    assert len(found) == 3
    assert filtered({"user": f"#{editor.pk}"})[1] == keys(AuditEvent.objects.by_user(editor))
    # A deleted user is still found by id (the events keep it).
    alice_pk = shop["alice"].pk
    shop["alice"].delete()
    assert len(filtered({"user": f"#{alice_pk}"})[1]) == 3


def test_unknown_user_gives_an_empty_page_with_a_message(client, root, shop):
    filterset, found = filtered({"user": "nobody"})
    assert found == [] and "No user “nobody”" in filterset.notices[0]
    client.force_login(root)
    response = client.get(browser_url(), {"user": "nobody"})
    assert response.status_code == 200
    assert row_keys(response) == []
    assert "No user “nobody”" in soup(response).select_one(".audit-notice").text


def test_filter_by_model_keeps_only_its_event_table(client, root, shop):
    assert filtered({"model": "shop.order"})[1] == keys(AuditEvent.objects.across(Order))
    client.force_login(root)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(browser_url(), {"model": "shop.order"})
    assert row_keys(response) == keys(AuditEvent.objects.across(Order))
    page_query = next(q["sql"] for q in ctx.captured_queries if "audit_app_auditevent" in q["sql"])
    assert "shop_orderevent" in page_query and "shop_customerevent" not in page_query


@pytest.mark.parametrize(
    ("action", "count"), [("created", 4), ("changed", 3), ("deleted", 0), ("reverted", 0)]
)
def test_filter_by_action(shop, action, count):
    found = filtered({"action": action})[1]
    assert len(found) == count
    assert all(e.action == action for e in AuditEvent.objects.filter(id__in=found))


def test_filter_by_date_range(shop):
    today = timezone.localdate()
    assert len(filtered({"created_at_after": today.isoformat()})[1]) == 7
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert filtered({"created_at_after": tomorrow})[1] == []
    yesterday = (today - timedelta(days=1)).isoformat()
    assert filtered({"created_at_before": yesterday})[1] == []


def test_filter_by_object_needs_a_model(shop):
    order = shop["order"]
    found = filtered({"model": "shop.order", "object_id": str(order.pk)})[1]
    assert found == keys(AuditEvent.objects.tracks(order))
    alone = EventFilterSet({"object_id": str(order.pk)}, queryset=AuditEvent.objects.all(),
                           models=tracked_models())  # fmt: skip
    assert not alone.is_valid()
    assert "Choose a model too" in alone.errors["object_id"][0]
    wrong = EventFilterSet({"model": "shop.order", "object_id": "abc"},
                           queryset=AuditEvent.objects.all(), models=tracked_models())  # fmt: skip
    assert not wrong.is_valid() and "not a valid id" in wrong.errors["object_id"][0]


def test_filter_by_request_id_and_context_key(shop):
    by_request = filtered({"request_id": "rq-1"})[1]
    assert len(by_request) == 3
    assert filtered({"context_key": "request_id", "context_value": "rq-1"})[1] == by_request
    assert len(filtered({"context_key": "command", "context_value": "import_tags"})[1]) == 1
    assert len(filtered({"context_key": "method", "context_value": "POST"})[1]) == 3
    assert len(filtered({"context_key": "reason", "context_value": "typo fix"})[1]) == 3
    keyless = EventFilterSet({"context_value": "x"}, queryset=AuditEvent.objects.all(),
                             context_keys=("url",))  # fmt: skip
    assert not keyless.is_valid() and "context_key" in keyless.errors
    # Only whitelisted keys: anything else is an invalid choice, never a JSON path.
    other = EventFilterSet({"context_key": "user__gt", "context_value": "1"},
                           queryset=AuditEvent.objects.all(), context_keys=("url",))  # fmt: skip
    assert not other.is_valid() and "context_key" in other.errors


def test_search_matches_request_ids_and_object_references(shop):
    assert filtered({"q": "rq-1"})[1] == filtered({"request_id": "rq-1"})[1]
    order = shop["order"]
    assert filtered({"q": f"shop.order:{order.pk}"})[1] == keys(AuditEvent.objects.tracks(order))
    assert filtered({"q": "no such request"})[1] == []
    filterset, found = filtered({"q": "shop.order:abc"})
    assert found == [] and "not a valid id" in filterset.notices[0]


def test_request_id_link_shows_everything_that_request_changed(client, root, shop):
    client.force_login(root)
    page = soup(client.get(browser_url()))
    link = page.select_one(".audit-request-link")["href"]
    response = client.get(link)
    assert set(row_keys(response)) == set(filtered({"request_id": HOSTILE_REQUEST})[1])


# -- visibility ---------------------------------------------------------------------------------


def test_viewer_sees_only_models_they_may_view_in_rows_choices_and_exports(client, cathy, shop):
    client.force_login(cathy)
    response = client.get(browser_url())
    assert response.status_code == 200
    assert row_keys(response) == keys(AuditEvent.objects.across(Customer))
    page = soup(response)
    choices = [o["value"] for o in page.select("select[name=model] option") if o["value"]]
    assert choices == ["shop.customer"]
    forbidden = client.get(browser_url(), {"model": "shop.order"})
    assert forbidden.status_code == 400 and row_keys(forbidden) == []
    assert "not a model whose history you may see" in soup(forbidden).select_one(".errornote").text
    # Searching for a forbidden object or request finds nothing of it.
    order = shop["order"]
    assert row_keys(client.get(browser_url(), {"q": f"shop.order:{order.pk}"})) == []
    assert row_keys(client.get(browser_url(), {"request_id": "rq-1"})) == keys(
        AuditEvent.objects.across(Customer).filter(context__metadata__request_id="rq-1")
    )
    rows = parse_csv(client.get(export_url()))
    assert {r["model"] for r in rows} == {"shop.Customer"} and len(rows) == 2
    # The estimate, too, only ever plans over the visible tables.
    with CaptureQueriesContext(connection) as ctx:
        client.get(browser_url(), {"page": "2"})
    assert not [q for q in ctx.captured_queries if "shop_orderevent" in q["sql"]]


def test_events_of_a_forbidden_model_cannot_be_opened_or_selected(client, cathy, shop):
    client.force_login(cathy)
    order_event = AuditEvent.objects.across(Order).first()
    detail = reverse("admin:audit_app_auditevent_change", args=[order_event.id])
    assert client.get(detail).status_code == 404
    response = client.post(
        browser_url(), {"action": "export_selected_csv", ACTION_CHECKBOX_NAME: [order_event.id]}
    )
    assert parse_csv(response) == []


def test_staff_without_any_tracked_model_may_not_browse(client, django_user_model, shop):
    nobody = staff(django_user_model, "nobody", "export_auditevent")
    client.force_login(nobody)
    assert client.get(browser_url()).status_code == 403
    assert client.get(export_url()).status_code == 403
    index = soup(client.get(reverse("admin:index")))
    assert not index.select(f"a[href='{browser_url()}']")


def test_admin_index_lists_the_browser_for_viewers(client, viewer):
    client.force_login(viewer)
    index = soup(client.get(reverse("admin:index")))
    assert index.select(f"a[href='{browser_url()}']")


def test_the_browser_is_read_only(client, root, shop):
    client.force_login(root)
    assert client.get(browser_url() + "add/").status_code == 404
    event = AuditEvent.objects.across(Order).first()
    model_admin = admin.site._registry[AuditEvent]
    request = client.get(browser_url()).wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)


# -- links into and out of the browser -----------------------------------------------------------


def test_event_detail_redirects_to_the_version_page(client, root, shop):
    client.force_login(root)
    event = AuditEvent.objects.tracks(shop["order"]).first()
    response = client.get(reverse("admin:audit_app_auditevent_change", args=[event.id]))
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:shop_order_audit_version", args=[shop["order"].pk, event.id]
    )
    for bad in ("nope", "shop.nosuchevent:1", "auth.user:1", "shop.orderevent:999999"):
        url = reverse("admin:audit_app_auditevent_change", args=[bad])
        assert client.get(url).status_code == 404


def test_tracked_changelist_history_button_opens_the_browser_on_that_model(client, viewer, shop):
    client.force_login(viewer)
    page = soup(client.get(reverse("admin:shop_order_changelist")))
    link = page.select_one("a.audit-events-link")["href"]
    assert link == f"{browser_url()}?model=shop.order"
    assert row_keys(client.get(link)) == keys(AuditEvent.objects.across(Order))


def test_user_page_activity_button_opens_the_browser_on_that_user(client, root, shop):
    client.force_login(root)
    alice = shop["alice"]
    page = soup(client.get(reverse("admin:auth_user_change", args=[alice.pk])))
    link = page.select_one("a.audit-activity-link")["href"]
    assert link == f"{browser_url()}?user=alice"
    assert row_keys(client.get(link)) == keys(AuditEvent.objects.by_user(alice))
    # The add form has no user yet, so no button.
    assert not soup(client.get(reverse("admin:auth_user_add"))).select("a.audit-activity-link")


def test_user_suggestions_need_view_permission_on_users(client, root, viewer, shop):
    url = reverse("admin:audit_app_auditevent_users")
    client.force_login(root)
    assert json.loads(client.get(url, {"term": "al"}).content)["results"] == [
        {"id": "alice", "text": "alice"}
    ]
    assert json.loads(client.get(url, {"term": "x\x00"}).content)["results"] == []
    page = soup(client.get(browser_url()))
    assert page.select_one("input[name=user]")["data-suggest-url"] == url
    client.force_login(viewer)
    assert json.loads(client.get(url, {"term": "al"}).content)["results"] == []
    assert not soup(client.get(browser_url())).select_one("input[name=user]").get("list")


# -- export -----------------------------------------------------------------------------------


def test_export_csv_of_exactly_the_filtered_rows(client, editor, shop):
    client.force_login(editor)
    page = soup(client.get(browser_url(), {"user": "alice", "model": "shop.order"}))
    link = page.select_one("a.audit-export-csv")["href"]
    response = client.get(link)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.match(
        r'^attachment; filename="audit-events-\d{8}-\d{6}\.csv"$',
        response["Content-Disposition"],
    )
    rows = parse_csv(response)
    expected = AuditEvent.objects.across(Order).by_user(shop["alice"]).order_by("-created_at")
    assert [(r["model"], r["object_id"]) for r in rows] == [
        (e.obj_model, e.obj_id) for e in expected
    ]
    assert {r["action"] for r in rows} == {"changed"} and {r["user"] for r in rows} == {"alice"}
    assert json.loads(rows[0]["diff"]) == {"status": ["new", "paid"]}


def test_export_cells_are_formula_safe_and_masked_values_stay_out(client, editor, shop):
    client.force_login(editor)
    rows = parse_csv(client.get(export_url(), {"user": "alice"}))
    # The hostile request id comes back as text a spreadsheet will not run.
    assert {r["request_id"] for r in rows} == {"'" + HOSTILE_REQUEST}
    customer = next(r for r in rows if r["model"] == "shop.Customer")
    assert json.loads(customer["diff"]) == {"api_token": ["••••••", "••••••"]}
    everything = client.get(export_url())
    assert b"tok-secret" not in b"".join(everything.streaming_content)


def test_export_jsonl(client, editor, shop):
    client.force_login(editor)
    response = client.get(export_url("jsonl"), {"request_id": "rq-1"})
    assert response["Content-Disposition"].endswith('.jsonl"')
    lines = b"".join(response.streaming_content).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3 and {r["request_id"] for r in records} == {"rq-1"}
    assert {r["user"] for r in records} == {"editor"}


def test_export_is_recorded_in_the_admin_log(client, editor, shop):
    client.force_login(editor)
    response = client.get(export_url(), {"user": "alice", "model": "shop.order"})
    exported = len(parse_csv(response))
    entry = LogEntry.objects.get()
    assert entry.user == editor
    assert entry.object_repr == "Export of audit events (CSV)"
    # On the record, but not as a change (Recent actions shows no change icon for it).
    assert not (entry.is_addition() or entry.is_change() or entry.is_deletion())
    assert "user=alice&model=shop.order" in entry.change_message
    # A few events are counted exactly (an estimate would say "about N events").
    assert exported > 1
    assert entry.change_message.endswith(f" as CSV, {exported} events.")


def test_export_needs_the_export_permission_and_only_reads(client, viewer, editor, shop):
    client.force_login(viewer)
    assert client.get(export_url()).status_code == 403
    assert not soup(client.get(browser_url())).select(".audit-export-link")
    actions = [
        o["value"] for o in soup(client.get(browser_url())).select("select[name=action] option")
    ]
    assert "export_selected_csv" not in actions and "revert_selected" not in actions
    response = client.post(
        browser_url(),
        {"action": "export_selected_csv", ACTION_CHECKBOX_NAME: [AuditEvent.objects.first().id]},
    )
    assert response.status_code == 302 and not getattr(response, "streaming", False)
    client.force_login(editor)
    assert client.post(export_url()).status_code == 405
    assert client.get(export_url("xlsx")).status_code == 404
    before = AuditEvent.objects.count()
    client.get(export_url())
    assert AuditEvent.objects.count() == before


def test_export_with_bad_filters_is_a_400_page(client, editor, shop):
    client.force_login(editor)
    response = client.get(export_url(), {"created_at_after": "not-a-date"})
    assert response.status_code == 400
    assert soup(response).select_one(".errornote")
    assert not LogEntry.objects.exists()
    empty = parse_csv(client.get(export_url(), {"user": "nobody"}))
    assert empty == []


def test_export_selected_rows_action(client, editor, shop):
    client.force_login(editor)
    chosen = keys(AuditEvent.objects.across(Order))[:2]
    response = client.post(
        browser_url() + "?sort=oldest",
        {"action": "export_selected_csv", ACTION_CHECKBOX_NAME: chosen},
    )
    rows = parse_csv(response)
    wanted = AuditEvent.objects.filter(id__in=chosen).order_by("created_at", "event_id")
    assert [r["object_id"] for r in rows] == [e.obj_id for e in wanted]
    assert "selected events" in LogEntry.objects.get().change_message
    jsonl = client.post(
        browser_url(), {"action": "export_selected_jsonl", ACTION_CHECKBOX_NAME: chosen}
    )
    assert len(b"".join(jsonl.streaming_content).splitlines()) == 2


@pytest.mark.slow
def test_export_streams_100k_events_in_bounded_memory(client, editor):
    import tracemalloc

    from tests.trackapp.models import Widget

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trackapp_widget (name, size, data, secret_token) "
            "SELECT 'w' || g, g, '{}'::jsonb, '' FROM generate_series(1, 100000) AS g"
        )
    root = type(editor).objects.create_superuser("bigroot")
    client.force_login(root)
    response = client.get(export_url(), {"model": Widget._meta.label_lower})
    assert response.streaming
    tracemalloc.start()
    total = lines = 0
    for chunk in response.streaming_content:
        total += len(chunk)
        lines += chunk.count(b"\n")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert lines == 100_001
    assert peak < 5 * 1024 * 1024, peak


# -- bulk revert ----------------------------------------------------------------------------


def created_events(*objs) -> list[str]:
    return [
        AuditEvent.objects.tracks(obj).order_by("created_at", "event_id").first().id for obj in objs
    ]


def confirm_data(response) -> dict:
    """What the confirmation page posts back: its hidden inputs."""
    form = soup(response).select_one("#content-main form")
    data: dict = {}
    for field in form.select("input[type=hidden]"):
        data.setdefault(field["name"], []).append(field["value"])
    return data


def test_bulk_revert_confirms_then_applies_all_in_one_transaction(client, editor, shop):
    client.force_login(editor)
    order, second = shop["order"], shop["second"]
    selected = created_events(order, second)
    confirm = client.post(
        browser_url(), {"action": "revert_selected", ACTION_CHECKBOX_NAME: selected}
    )
    assert confirm.status_code == 200
    page = soup(confirm)
    items = page.select("section.audit-bulk-item")
    assert {i["data-event"] for i in items} == set(selected)
    for item in items:
        assert item.select_one("tr[data-field=status] .audit-old").text.strip() == "Paid"
        assert item.select_one("tr[data-field=status] .audit-new").text.strip() == "New"
    assert page.select_one("input[type=submit]")["value"] == "Yes, revert all 2"
    order.refresh_from_db()
    assert order.status == "paid"  # nothing written yet
    data = confirm_data(confirm)
    data["reason"] = ["bulk fix"]
    done = client.post(browser_url(), data, follow=True)
    assert done.redirect_chain[-1][0] == browser_url()
    assert "Reverted 2 objects" in soup(done).select_one(".messagelist").text
    for obj in (order, second):
        obj.refresh_from_db()
        assert obj.status == "new"
        latest = AuditEvent.objects.tracks(obj).order_by("-created_at").first()
        assert latest.action == "reverted" and latest.metadata["reason"] == "bulk fix"
        assert latest.username == "editor"


def test_bulk_revert_failure_writes_nothing_and_says_why(client, editor, shop):
    client.force_login(editor)
    order, second = shop["order"], shop["second"]
    selected = created_events(order, second)
    confirm = client.post(
        browser_url(), {"action": "revert_selected", ACTION_CHECKBOX_NAME: selected}
    )
    # Meanwhile someone changes the older order, which is reverted last.
    with audit_app.context(username="someone"):
        order.notes = "changed meanwhile"
        order.save()
    before = AuditEvent.objects.count()
    failed = client.post(browser_url(), confirm_data(confirm))
    assert failed.status_code == 409
    error = soup(failed).select_one(".audit-error").text
    assert str(order) in error and "Nothing was reverted" in error
    second.refresh_from_db()
    assert second.status == "paid"  # reverted first, then rolled back with the rest
    assert AuditEvent.objects.count() == before


def test_bulk_revert_blocks_two_versions_of_one_object(client, editor, shop):
    client.force_login(editor)
    order = shop["order"]
    selected = keys(AuditEvent.objects.tracks(order))
    confirm = client.post(
        browser_url(), {"action": "revert_selected", ACTION_CHECKBOX_NAME: selected}
    )
    page = soup(confirm)
    assert any("same object" in p.text for p in page.select(".audit-problem"))
    assert not page.select("input[type=submit]")
    forced = client.post(browser_url(), confirm_data(confirm))
    assert forced.status_code == 400
    order.refresh_from_db()
    assert order.status == "paid"


def test_bulk_revert_needs_change_permission_on_each_model(client, django_user_model, shop):
    # May revert and change orders, but only view customers.
    user = django_user_model.objects.create_user("ollie", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_order", "change_order", "view_customer", "revert_auditevent"]
        )
    )
    client.force_login(user)
    selected = created_events(shop["order"], shop["customer"])
    confirm = client.post(
        browser_url(), {"action": "revert_selected", ACTION_CHECKBOX_NAME: selected}
    )
    page = soup(confirm)
    blocked = page.select_one(f"section[data-event='{selected[1]}'] .audit-problem").text
    assert "You may not change customers" in blocked
    assert not page.select("input[type=submit]")


def test_actions_refuse_bad_selections_without_errors(client, editor, shop):
    client.force_login(editor)
    for selected in (["garbage"], ["auth.user:1"], ["shop.orderevent:" + "9" * 30]):
        response = client.post(
            browser_url(), {"action": "revert_selected", ACTION_CHECKBOX_NAME: selected}
        )
        assert response.status_code == 302
    nothing = client.post(browser_url(), {"action": "revert_selected"}, follow=True)
    assert "Items must be selected" in soup(nothing).select_one(".messagelist").text
    unknown = client.post(
        browser_url(), {"action": "delete_selected", ACTION_CHECKBOX_NAME: ["x"]}, follow=True
    )
    assert "Choose an action" in soup(unknown).select_one(".messagelist").text


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": "1.5"},
        {"page": "01"},  # the history pages' rule too: no leading zero
        {"page": "1\n"},
        {"page": "99999999999999999999"},
        {"page": "201"},
        {"user": "u" * 10_000},
        {"request_id": "bad\x00id"},
        {"created_at_after": "not-a-date"},
        {"created_at_after": "0001-01-01"},
        {"created_at_before": "9999-12-31"},
        {"model": "shop.nosuchmodel"},
        {"model": "auth.user"},
        {"model": "shop.order", "object_id": "abc"},
        {"model": "shop.order", "object_id": "9" * 30},
        {"object_id": "1"},
        {"context_key": "password", "context_value": "x"},
        {"action": "exploded"},
        {"q": "q" * 1000},
    ],
)
def test_bad_input_is_a_400_page_with_a_message(client, root, shop, params):
    client.force_login(root)
    response = client.get(browser_url(), params)
    assert response.status_code == 400
    assert soup(response).select_one(".errornote").text.strip()
    assert row_keys(response) == []


@pytest.mark.parametrize(
    "params",
    [
        {"page": "7"},
        {"user": "#999999999"},
        {"q": "shop.order:99999999999999999999999"},
        {"sort": "label"},
        {"unknown": "param"},
        {"user": "nobody", "page": "2"},
    ],
)
def test_well_formed_but_empty_questions_are_an_empty_page(client, root, shop, params):
    client.force_login(root)
    response = client.get(browser_url(), params)
    assert response.status_code == 200
    assert soup(response).select_one("#result_list")


# -- settings ---------------------------------------------------------------------------------


def test_context_keys_setting_is_a_whitelist_of_plain_names(client, root, shop, settings):
    from django.core.exceptions import ImproperlyConfigured

    from audit_admin import conf

    settings.AUDIT_ADMIN_CONTEXT_KEYS = ("url", "tenant")
    assert conf.context_keys() == ("url", "tenant")
    client.force_login(root)
    page = soup(client.get(browser_url()))
    assert [o["value"] for o in page.select("select[name=context_key] option")] == [
        "",
        "url",
        "tenant",
    ]
    for bad in (("metadata__user",), ("a b",), (1,)):
        settings.AUDIT_ADMIN_CONTEXT_KEYS = bad
        with pytest.raises(ImproperlyConfigured, match="AUDIT_ADMIN_CONTEXT_KEYS"):
            conf.context_keys()


def test_max_page_setting(client, root, shop, settings, monkeypatch):
    monkeypatch.setattr(admin.site._registry[AuditEvent], "list_per_page", 1)
    settings.AUDIT_ADMIN_MAX_PAGE = 2
    client.force_login(root)
    assert client.get(browser_url(), {"page": "2"}).status_code == 200
    refused = client.get(browser_url(), {"page": "3"})
    assert refused.status_code == 400
    assert "Page numbers go from 1 to 2" in soup(refused).select_one(".errornote").text
