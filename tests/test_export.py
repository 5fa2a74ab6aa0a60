"""Export rows, CSV and JSON Lines: exact rows, hostile cells neutralised, streamed."""

import csv
import io
import json
from unittest.mock import ANY

import pytest
from django.core.management import CommandError, call_command

import audit_app
from audit_app import export
from audit_app.models import AuditEvent
from shop.models import Customer, DigitalProduct, Order, Product
from tests.trackapp.models import Color, Invoice, Widget

pytestmark = pytest.mark.django_db

HOSTILE = [
    '=HYPERLINK("http://evil")',
    "+1+1",
    "-2",
    "@SUM(A1)",
    "\tTAB",
    "\rCR",
    "  =1",
    'plain, "quoted"\nnewline',
]


@pytest.fixture
def events(django_user_model, layout):
    user = django_user_model.objects.create_user("=cmd|' /C calc'!A0")
    with audit_app.context(user=user.pk, username=user.username, request_id="req-9", url="/x?a=1"):
        customer = Customer.objects.create(
            name=HOSTILE[0], email="e@example.org", api_token="secret-abc"
        )
        order = Order.objects.create(customer=customer, notes="n1")
        order.notes = HOSTILE[-1]
        order.status = "paid"
        order.save()
    return {"customer": customer, "order": order}


def parse_csv(data: bytes):
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def as_csv_row(record: dict) -> dict:
    """The CSV row of a JSON Lines record: its cells as text, guarded; no data, context."""
    assert tuple(record) == export.JSONL_KEYS
    text = [c for c in export.COLUMNS if c not in ("changed_fields", "diff")]
    row = {key: export.guard(record[key] or "") for key in text}
    row["changed_fields"] = " ".join(record["changed_fields"] or ())
    row["diff"] = json.dumps(record["diff"], ensure_ascii=False) if record["diff"] else ""
    return row


def test_csv_round_trip(events):
    qs = AuditEvent.objects.across(Order)
    rows = parse_csv(b"".join(export.stream_csv(qs)))
    assert [r["action"] for r in rows] == ["changed", "created"]
    update = rows[0]
    assert update["model"] == "shop.Order" and update["object_id"] == str(events["order"].pk)
    assert update["object"] == f"order {events['order'].pk}"
    assert update["request_id"] == "req-9" and update["url"] == "/x?a=1"
    assert update["changed_fields"] == "notes status"
    assert json.loads(update["diff"]) == {"notes": ["n1", HOSTILE[-1]], "status": ["new", "paid"]}
    assert update["time"].endswith("Z") and "T" in update["time"]
    assert rows[1]["diff"] == "" and rows[1]["changed_fields"] == ""


def test_formula_cells_are_neutralised(events):
    rows = parse_csv(
        b"".join(export.stream_csv(AuditEvent.objects.exclude(obj_model="shop.StaffUser")))
    )
    for row in rows:
        for value in row.values():
            assert not value or (
                value[0] not in "=+-@\t\r" and not value.lstrip().startswith("=")
            ), value
    assert {r["user"] for r in rows} == {"'=cmd|' /C calc'!A0"}


@pytest.mark.parametrize("value", HOSTILE)
def test_guard_in_python_matches_sql(value):
    guarded = export.guard(value)
    assert guarded == (
        "'" + value if value.lstrip(" ")[:1] in "=+-@" or value[:1] in "\t\r" else value
    )


def test_masked_values_never_exported(events):
    customer = events["customer"]
    customer.api_token = "secret-xyz"
    customer.save()
    data = b"".join(export.stream_csv(AuditEvent.objects.across(Customer))).decode()
    assert "secret" not in data
    (update, _) = parse_csv(data.encode())
    assert json.loads(update["diff"]) == {"api_token": ["••••••", "••••••"]}


def test_rows_generator_and_jsonl_match_csv(events):
    qs = AuditEvent.objects.filter(obj_model="shop.Order")
    from_rows = [dict(zip(export.COLUMNS, r, strict=True)) for r in export.rows(qs)]
    lines = b"".join(export.stream_jsonl(qs)).decode().splitlines()
    from_jsonl = [as_csv_row(json.loads(line)) for line in lines]
    from_csv = parse_csv(b"".join(export.stream_csv(qs)))
    assert from_rows == from_jsonl == from_csv
    assert len(from_rows) == 2


def test_context_cells_are_guarded_like_guard(django_user_model):
    """User, request id and URL: each hostile value comes out as guard() makes it."""
    for i, value in enumerate(HOSTILE):
        with audit_app.context(user=None, username=value, request_id=value, url=value):
            Customer.objects.create(name=f"c{i}", email=f"c{i}@example.org")
    rows = parse_csv(b"".join(export.stream_csv(AuditEvent.objects.order_by("created_at"))))
    assert [(r["user"], r["request_id"], r["url"]) for r in rows] == [
        (export.guard(v),) * 3 for v in HOSTILE
    ]


def test_object_keys_and_custom_labels_are_guarded():
    widget = Widget.objects.create(id=-5, name="negative key")
    audit_app.create_event(widget, label="-note")
    rows = parse_csv(b"".join(export.stream_csv(AuditEvent.objects.across(Widget))))
    assert [r["action"] for r in rows] == ["'-note", "created"]
    assert {(r["object_id"], r["object"]) for r in rows} == {("'-5", f"widget {widget.pk}")}


@pytest.fixture
def history(layout):
    """Versions of several models: JSON with nulls, decimals, text to escape, times,
    foreign keys, masked fields, UUID keys, concrete inheritance, a delete and a
    snapshot that changes nothing."""
    with audit_app.context(username="ann"):
        color = Color.objects.create(name="red")
        widget = Widget.objects.create(name="w", color=color, data={"a": None, "b": [1, None]})
        widget.data = {"a": 1, "b": [1, None], "c": {"d": None}}
        widget.secret_token = "s1"
        widget.color = None
        widget.save()
        widget.size = 3
        widget.save()
        audit_app.create_event(widget, label="snapshot")  # nothing changed
        product = DigitalProduct.objects.create(
            sku="d1", name="Song", price="1.10", download_url="https://x.example/1"
        )
        product.price = "2.00"
        product.name = 'Song "remix"\n\ttwo'
        product.file_size_mb = 7
        product.save()
        Product.objects.filter(pk=product.pk).update(active=False)
        invoice = Invoice.objects.create(amount=10, code="abc")
        Invoice.objects.filter(pk=invoice.pk).update(status="sent", amount=20)
        customer = Customer.objects.create(name="C", email="c@example.org", api_token="t1")
        customer.api_token = "t2"
        customer.phone = "123"
        customer.save()
        customer.delete()
        buyer = Customer.objects.create(name="B", email="b@example.org")
        order = Order.objects.create(customer=buyer, notes="a\x01b\\", total="-0.50")
        Order.objects.filter(pk=order.pk).update(placed_at="2020-01-02T03:04:05.123456Z")


def test_diffs_are_the_diffs_of_the_event_api(history):
    """Every row's changed fields and diff are what AuditEvent.diff says, in the same order."""
    events = list(AuditEvent.objects.all())
    rows = parse_csv(b"".join(export.stream_csv(AuditEvent.objects.all())))
    assert len(rows) == len(events) > 10
    for row, event in zip(rows, events, strict=True):
        assert (row["model"], row["object_id"]) == (event.obj_model, event.obj_id)
        assert row["changed_fields"] == " ".join(sorted(event.diff or ()))
        assert (json.loads(row["diff"]) if row["diff"] else None) == (event.diff or None)
    diffs = [json.loads(r["diff"]) for r in rows if r["diff"]]
    assert {
        "data": [{"a": None, "b": [1, None]}, {"a": 1, "b": [1, None], "c": {"d": None}}],
        "secret_token": ["••••••", "••••••"],
        "color": [Color.objects.get().pk, None],
    } in diffs
    assert {"name": ["Song", 'Song "remix"\n\ttwo'], "price": ["1.10", "2.00"]} in diffs
    assert {"placed_at": [ANY, "2020-01-02T03:04:05.123456+00:00"]} in diffs


def _is_lookup(node):
    return node.get("Alias", "").startswith("prev") and "Scan" in node["Node Type"]


def _lookups(plan):
    """How many times the previous version is looked up: once per run of a scan of a
    plain event table, or of the append over a partitioned one's partitions."""
    children = plan.get("Plans", ())
    if "Append" in plan["Node Type"] and children and all(map(_is_lookup, children)):
        return plan["Actual Loops"]
    if _is_lookup(plan):
        return plan["Actual Loops"]
    return sum(_lookups(child) for child in children)


@pytest.mark.parametrize("across", [(), (Widget,)], ids=["all tables", "one table"])
def test_each_events_previous_version_is_read_once(history, across):
    """One lookup per event, whether the union has one branch or many."""
    from django.db import connection

    queryset = AuditEvent.objects.across(*across) if across else AuditEvent.objects.all()
    statement, params = export.rows_sql(queryset)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {statement}", params)
        plan = cursor.fetchone()[0][0]["Plan"]
    assert _lookups(plan) == plan["Actual Rows"] == queryset.count() > 3


def test_diff_false_leaves_the_diff_out(history):
    with_diff = parse_csv(b"".join(export.stream_csv(AuditEvent.objects.all())))
    without = parse_csv(b"".join(export.stream_csv(AuditEvent.objects.all(), diff=False)))
    assert any(r["diff"] for r in with_diff)
    assert all(r["diff"] == r["changed_fields"] == "" for r in without)
    keep = [c for c in export.COLUMNS if c not in ("changed_fields", "diff")]
    assert [[r[c] for c in keep] for r in without] == [[r[c] for c in keep] for r in with_diff]
    lines = b"".join(export.stream_jsonl(AuditEvent.objects.all(), diff=False)).splitlines()
    records = [json.loads(line) for line in lines]
    assert all(r["diff"] is None and r["changed_fields"] is None for r in records)
    assert [as_csv_row(r) for r in records] == without
    assert [
        dict(zip(export.COLUMNS, r, strict=True))
        for r in export.rows(AuditEvent.objects.all(), diff=False)
    ] == without


def test_no_event_table_in_scope_exports_the_header_only(events):
    nothing = AuditEvent.objects.across(Order).across(Customer)
    assert b"".join(export.stream_csv(nothing)) == (",".join(export.COLUMNS) + "\n").encode()
    assert b"".join(export.stream_jsonl(nothing)) == b""


def test_concat_ws_takes_any_number_of_parts():
    from django.db import connection

    parts = [f"'p{i}'" if i % 3 else "NULL" for i in range(230)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {export._concat_ws(chr(39) + ' ' + chr(39), parts)}")
        assert cursor.fetchone()[0] == " ".join(f"p{i}" for i in range(230) if i % 3)


def test_export_follows_the_filters(events):
    qs = AuditEvent.objects.filter(label="insert", obj_model="shop.Customer")
    assert len(parse_csv(b"".join(export.stream_csv(qs)))) == 1


def test_export_command(events, tmp_path):
    target = tmp_path / "out.csv"
    call_command(
        "audit", "export", "--format", "csv", "--model", "shop.Order", "--output", str(target)
    )
    assert len(parse_csv(target.read_bytes())) == 2
    call_command("audit", "export", "--model", "shop.Order", "--no-diff", "--output", str(target))
    assert [r["diff"] for r in parse_csv(target.read_bytes())] == ["", ""]
    call_command(
        "audit",
        "export",
        "--format",
        "jsonl",
        "--user",
        "=cmd|' /C calc'!A0",
        "--output",
        str(target),
    )
    assert len(target.read_text().splitlines()) == 3
    with pytest.raises(CommandError, match="No user"):
        call_command("audit", "export", "--user", "nobody", "--output", str(target))


@pytest.mark.django_db(transaction=True)
def test_export_streams_in_constant_memory():
    """100k events exported: the Python process never holds more than a few chunks."""
    import tracemalloc

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trackapp_widget (name, size, data, secret_token) "
            "SELECT 'w' || g, g, '{}'::jsonb, '' FROM generate_series(1, 100000) AS g"
        )
        # As autovacuum would: with the statistics of an empty table the planner may
        # look up each previous version by a sequential scan (quadratic).
        cursor.execute("ANALYZE trackapp_widgetevent")
    from tests.trackapp.models import Widget

    qs = AuditEvent.objects.across(Widget)
    tracemalloc.start()
    total = chunks = 0
    for chunk in export.stream_csv(qs):
        total += len(chunk)
        chunks += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total > 100_000 * 50
    assert peak < 5 * 1024 * 1024, peak
    # Chunks of CHUNK_BYTES (the header apart), not one per row.
    assert chunks <= 2 + total // export.CHUNK_BYTES, chunks
