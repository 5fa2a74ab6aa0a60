"""JSON Lines: each line one JSON object whose diff, data and context are JSON values."""

import json

import pytest
from django.db import connection

import audit_app
from audit_app import export
from audit_app.event_sql import MASKED
from audit_app.models import AuditEvent
from shop.models import Customer, Order
from tests.test_export import HOSTILE, history  # noqa: F401 (a fixture)
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db


def jsonl(queryset, **options) -> list[dict]:
    lines = b"".join(export.stream_jsonl(queryset, **options)).decode("utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture
def shop():
    with audit_app.context(user=None, username="ann", request_id="req-1", url="/orders/"):
        customer = Customer.objects.create(name="C", email="c@example.org", api_token="secret-1")
        order = Order.objects.create(customer=customer, notes="n1", total="10.50")
        order.status = "paid"
        order.total = "12.00"
        order.save()
        customer.api_token = "secret-2"
        customer.save()
    return {"customer": customer, "order": order}


def test_each_line_is_an_object_of_json_values(shop):
    order_update, order_insert = jsonl(AuditEvent.objects.across(Order))
    assert tuple(order_update) == export.JSONL_KEYS
    assert order_update["action"] == "changed" and order_insert["action"] == "created"
    assert order_update["changed_fields"] == ["status", "total"]
    assert order_update["diff"] == {"status": ["new", "paid"], "total": ["10.50", "12.00"]}
    # An object's first event has no previous one: no diff, no changed fields.
    assert order_insert["diff"] is None and order_insert["changed_fields"] is None
    assert order_update["data"] == {
        "id": shop["order"].pk,
        "customer": shop["customer"].pk,
        "status": "paid",
        "total": "12.00",
        "notes": "n1",
        "placed_at": order_update["data"]["placed_at"],
    }
    assert isinstance(order_update["data"]["placed_at"], str)
    assert order_update["context"] == {
        "user": None,
        "username": "ann",
        "request_id": "req-1",
        "url": "/orders/",
    }
    assert (order_update["user"], order_update["request_id"], order_update["url"]) == (
        "ann",
        "req-1",
        "/orders/",
    )
    assert order_update["object_id"] == str(shop["order"].pk)
    assert order_update["time"].endswith("Z")


def test_masked_fields_are_the_masked_marker_in_data_and_diff(shop):
    records = jsonl(AuditEvent.objects.across(Customer))
    assert [r["data"]["api_token"] for r in records] == [MASKED, MASKED]
    assert records[0]["diff"] == {"api_token": [MASKED, MASKED]}
    text = b"".join(export.stream_jsonl(AuditEvent.objects.all())).decode()
    markers = Customer.audit_event_model.objects.values_list("api_token", flat=True)
    assert "secret" not in text
    assert all(marker and marker not in text for marker in markers)


def test_an_event_without_context_has_null_context():
    with audit_app.disable_tracking("fixture"):
        widget = Widget.objects.create(name="w")
    audit_app.create_event(widget, label="note")
    (record,) = jsonl(AuditEvent.objects.across(Widget))
    assert record["context"] is None
    assert record["user"] is record["request_id"] is record["url"] is None
    # The only event of its object: no previous event to compare with.
    assert record["diff"] is None and record["action"] == "note"


def test_an_event_that_changes_nothing_has_an_empty_diff():
    widget = Widget.objects.create(name="w")
    audit_app.create_event(widget, label="note")
    note, _ = jsonl(AuditEvent.objects.across(Widget))
    assert (note["diff"], note["changed_fields"]) == ({}, [])
    assert AuditEvent.objects.across(Widget).first().diff == {}


def test_diff_false_writes_null_diffs(shop):
    records = jsonl(AuditEvent.objects.all(), diff=False)
    assert records and all(r["diff"] is r["changed_fields"] is None for r in records)
    assert all(isinstance(r["data"], dict) for r in records)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_stay_plain_json_strings(value):
    """No formula guard in JSON Lines: the value comes back exactly as stored."""
    with audit_app.context(user=None, username=value, request_id=value, url=value, note=value):
        widget = Widget.objects.create(id=-5, name=value, data={"k": value})
        audit_app.create_event(widget, label="-note")
    note, insert = jsonl(AuditEvent.objects.across(Widget))
    assert note["action"] == "-note" and note["object_id"] == "-5"
    assert note["object"] == "widget -5"
    assert (note["user"], note["request_id"], note["url"]) == (value, value, value)
    assert note["context"]["note"] == value
    assert insert["data"]["name"] == value and insert["data"]["data"] == {"k": value}


def test_data_and_diff_are_those_of_the_event_api(history):  # noqa: F811
    events = list(AuditEvent.objects.all())
    records = jsonl(AuditEvent.objects.all())
    assert len(records) == len(events) > 10
    for record, event in zip(records, events, strict=True):
        assert (record["model"], record["object_id"]) == (event.obj_model, event.obj_id)
        assert record["data"] == event.data
        assert record["diff"] == event.diff
        assert record["changed_fields"] == (None if event.diff is None else sorted(event.diff))
        assert record["context"] == (event.metadata or None)


def test_no_event_table_in_scope_writes_nothing():
    assert b"".join(export.stream_jsonl(AuditEvent.objects.across(Order).across(Customer))) == b""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # its ANALYZE must not outlive the test
def test_jsonl_streams_in_constant_memory():
    """50k events as JSON Lines: COPY's output forwarded in chunks, never held whole."""
    import tracemalloc

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trackapp_widget (name, size, data, secret_token) "
            "SELECT 'w' || g, g, '{}'::jsonb, 's' || g FROM generate_series(1, 50000) AS g"
        )
        cursor.execute("ANALYZE trackapp_widgetevent")
    tracemalloc.start()
    total = chunks = 0
    for chunk in export.stream_jsonl(AuditEvent.objects.across(Widget)):
        total += len(chunk)
        chunks += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total > 50_000 * 200
    assert peak < 5 * 1024 * 1024, peak
    assert chunks <= 1 + total // export.CHUNK_BYTES, chunks
