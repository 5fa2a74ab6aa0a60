"""Backfill writes a baseline only for rows without history: running it twice is safe."""

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection

import audit_app
from audit_app import sql
from shop.models import DigitalProduct, Product, StaffUser
from tests.trackapp.models import Widget

pytestmark = pytest.mark.django_db

SPEC = sql.EventSpec(
    table="shop_customer",
    event_table="shop_customerevent",
    pk_column="id",
    columns=("id", "name", "api_token"),
    masked=frozenset({"api_token"}),
)


def untracked_widgets(count: int) -> list[int]:
    """Widgets inserted with tracking off: rows without history, as before tracking."""
    with audit_app.disable_tracking("fixture"):
        widgets = Widget.objects.bulk_create(
            [Widget(name=str(i), secret_token="t") for i in range(count)]
        )
    return [w.pk for w in widgets]


def snapshots(model, **filters):
    return model.audit_event_model.objects.filter(audit_label="snapshot", **filters)


def test_the_batch_probes_the_event_index_per_row_and_masks_before_keeping_rows():
    statement = sql.snapshot_sql(
        SPEC, label="snapshot", where_sql="TRUE", limit=500, skip_with_history=True
    )
    probe = '(SELECT TRUE FROM "shop_customerevent" AS h WHERE h."id" = n."id" LIMIT 1) IS NOT NULL'
    assert "EXISTS" not in statement
    # The probe sits above the LIMIT: a batch probes only its own rows.
    assert f"{probe} AS audit_has_history FROM (SELECT " in statement
    assert 'ORDER BY n."id" LIMIT 500) AS n' in statement
    # The batch holds the masked column's marker, never the value.
    batch = statement[: statement.index("audit_written AS")]
    assert 'sha256(convert_to(n."api_token"::text' in batch
    forced = sql.snapshot_sql(SPEC, label="snapshot", where_sql="TRUE")
    assert (
        "FALSE AS audit_has_history" in forced and "LIMIT" not in forced.split("audit_written")[0]
    )


def test_a_second_backfill_writes_nothing():
    untracked_widgets(25)
    first = audit_app.backfill(Widget, batch_size=10)
    assert (first, first.skipped) == (25, 0)
    second = audit_app.backfill(Widget, batch_size=10)
    assert (second, second.skipped) == (0, 25)
    assert snapshots(Widget).count() == 25
    assert snapshots(Widget).values("audit_obj_id").distinct().count() == 25
    assert repr(second) == "Backfilled(written=0, skipped=25)"


def test_rows_with_history_are_skipped_unless_forced():
    with_history = [Widget.objects.create(name=f"h{i}").pk for i in range(3)]
    without = untracked_widgets(2)
    result = audit_app.backfill(Widget)
    assert (result.written, result.skipped) == (2, 3)
    assert set(snapshots(Widget).values_list("audit_obj_id", flat=True)) == set(without)
    forced = audit_app.backfill(Widget, force=True)
    assert (forced.written, forced.skipped) == (5, 0)
    assert snapshots(Widget, audit_obj_id__in=with_history).count() == 3


def test_skipped_rows_are_counted_across_batches():
    keys = untracked_widgets(25)
    for key in keys[::3]:  # 9 rows get history
        audit_app.create_event(Widget.objects.get(pk=key), label="snapshot")
    result = audit_app.backfill(Widget.objects.filter(pk__in=keys), batch_size=4)
    assert (result.written, result.skipped) == (16, 9)
    assert snapshots(Widget).count() == 25
    assert set(snapshots(Widget).values_list("audit_obj_id", flat=True)) == set(keys)
    assert snapshots(Widget).values("audit_obj_id").distinct().count() == 25


def test_a_child_and_a_proxy_look_at_their_own_event_table():
    with audit_app.disable_tracking("fixture"):
        product = DigitalProduct.objects.create(
            sku="d", name="d", price=1, download_url="https://x.org"
        )
        user = User.objects.create_user("quiet")
    # History in the parent's table only: the child's own table has none.
    Product.objects.filter(pk=product.pk).update(active=False)
    assert audit_app.backfill(DigitalProduct).written == 1
    assert snapshots(DigitalProduct).get().audit_obj_id == product.pk
    assert audit_app.backfill(DigitalProduct).skipped == 1
    # The parent table has that object's update: its row is skipped there.
    result = audit_app.backfill(Product)
    assert (result.written, result.skipped) == (0, 1)
    # A proxy's events are the proxy's table: a user saved untracked has none.
    tracked_user = User.objects.create_user("loud")
    result = audit_app.backfill(StaffUser)
    assert (result.written, result.skipped) == (1, 1)
    assert snapshots(StaffUser).get().audit_obj_id == user.pk != tracked_user.pk


def test_backfill_command_says_what_it_wrote_and_skipped(capsys):
    untracked_widgets(1)
    Widget.objects.create(name="tracked")
    call_command("audit", "backfill", "trackapp.Widget")
    assert capsys.readouterr().out == (
        "trackapp.Widget: 1 snapshot event written, 1 row skipped (it already had history)\n"
    )
    call_command("audit", "backfill", "trackapp.Widget")
    assert "0 snapshot events written, 2 rows skipped" in capsys.readouterr().out
    call_command("audit", "backfill", "trackapp.Widget", "--force", "--label", "baseline")
    assert "2 baseline events written, 0 rows skipped" in capsys.readouterr().out
    with pytest.raises(CommandError, match="batch_size must be at least 1"):
        call_command("audit", "backfill", "trackapp.Widget", "--batch-size", "0")


def _plan_nodes(plan):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


@pytest.mark.slow
def test_the_history_probe_reads_the_object_index_once_per_row():
    """20k rows, half with history: one index probe per row, no scan of the event table."""
    with audit_app.disable_tracking("fixture"), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trackapp_widget (name, size, data, secret_token) "
            "SELECT 'w' || g, g, '{}', '' FROM generate_series(1, 20000) AS g"
        )
    half = Widget.objects.order_by("pk").values_list("pk", flat=True)[:10_000]
    with connection.cursor() as cursor:
        cursor.execute(
            sql.snapshot_sql(
                Widget.audit_event_model.audit_spec,
                label="seed",
                where_sql=f'n."id" IN ({", ".join(map(str, half))})',
            )
        )
    spec = Widget.audit_event_model.audit_spec
    statement = sql.snapshot_sql(
        spec, label="snapshot", where_sql="TRUE", limit=50_000, skip_with_history=True
    )
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {statement}")
        plan = cursor.fetchone()[0][0]["Plan"]
    reads = [
        node
        for node in _plan_nodes(plan)
        if node.get("Relation Name") == spec.event_table and node["Node Type"] != "ModifyTable"
    ]
    assert [n["Node Type"] for n in reads] in (["Index Only Scan"], ["Index Scan"])
    assert reads[0]["Actual Loops"] == 20_000
    assert snapshots(Widget).count() == 10_000
    assert audit_app.backfill(Widget) == 0
