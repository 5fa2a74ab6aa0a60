"""Event models: fields, conditions, masking, append-only, inheritance, m2m, backfill."""

import pytest
from django.contrib.auth.models import User
from django.core import checks
from django.db import DatabaseError, connection, transaction

import audit_app
from audit_app import partitioning
from audit_app.exceptions import TrackingError
from audit_app.models import Bypass
from audit_app.tracking import plan_event_model
from shop.models import Customer, DigitalProduct, Product, ProductTag, StaffUser, Tag
from tests.trackapp.models import Color, Credential, Invoice, Note, RowWidget, Widget

pytestmark = pytest.mark.django_db


def column_names(model):
    with connection.cursor() as cursor:
        return [
            c.name
            for c in connection.introspection.get_table_description(cursor, model._meta.db_table)
        ]


class TestEventModel:
    def test_generated_names_and_manager(self):
        assert Widget.audit_event_model.__name__ == "WidgetEvent"
        assert Widget.audit_event_model._meta.label == "trackapp.WidgetEvent"
        assert RowWidget.audit_event_model.__name__ == "RowWidgetHistory"
        w = Widget.objects.create(name="a")
        w.name = "b"
        w.save()
        assert [e.audit_label for e in w.audit_events.all()] == ["insert", "update"]

    def test_copies_are_unconstrained_and_unindexed(self):
        event_model = Widget.audit_event_model
        color = event_model._meta.get_field("color")
        assert (color.db_constraint, color.remote_field.related_name) == (False, "+")
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(
                cursor, event_model._meta.db_table
            )
        indexed = sorted(
            tuple(c["columns"]) for c in constraints.values() if c["index"] or c["primary_key"]
        )
        assert indexed == [
            ("audit_context_id",),
            ("audit_created_at", "audit_id"),
            ("audit_id",),
            ("audit_user_id", "audit_created_at"),
            ("id", "audit_created_at"),
        ]
        assert not [c for c in constraints.values() if c["foreign_key"]]

    def test_event_outlives_its_object_by_default(self):
        w = Widget.objects.create(name="a")
        pk = w.pk
        w.delete()
        assert Widget.audit_event_model.objects.filter(audit_obj_id=pk).count() == 2

    def test_field_subset_and_custom_field(self):
        assert set(column_names(Invoice.audit_event_model)) == {
            "audit_id",
            "audit_created_at",
            "audit_label",
            "audit_context_id",
            "audit_user_id",
            "uid",
            "status",
            "amount",
            "code",
        }
        code = Invoice.audit_event_model._meta.get_field("code")
        assert (type(code).__name__, code.marker) == ("Reversed", "y")

    def test_unknown_fields_are_refused_with_the_choices(self):
        from audit_app.tracking import tracked_fields

        with pytest.raises(ValueError, match=r"names \['nope'\].*choose from"):
            tracked_fields(Widget, ["nope"], None)

    def test_composite_and_repeat_tracking_are_refused(self):
        with pytest.raises(TypeError, match="already tracked"):
            audit_app.track()(Widget)

    def test_model_checks_pass_for_generated_models(self):
        errors = [e for e in checks.run_checks() if e.level >= checks.ERROR]
        assert errors == []


class TestConditions:
    def test_any_change_on_named_fields(self):
        inv = Invoice.objects.create(amount=5)
        inv.comment = "not tracked"
        inv.save()
        inv.amount = 6  # tracked, but the update tracker watches status only
        inv.save()
        inv.status = "sent"
        inv.save()
        assert [e.audit_label for e in inv.audit_events.all()] == ["insert", "update"]

    def test_q_condition_tracker(self):
        inv = Invoice.objects.create(amount=5)
        Invoice.objects.filter(pk=inv.pk).update(amount=5000)
        assert [e.audit_label for e in inv.audit_events.all()] == ["insert", "big_jump"]

    def test_manual_event(self):
        inv = Invoice.objects.create(amount=5)
        with audit_app.context(reason="call with customer"):
            event = audit_app.create_event(inv, label="note")
        assert (event.audit_label, event.amount, event.audit_obj_id) == ("note", 5, inv.pk)
        assert event.audit_context.metadata == {"reason": "call with customer"}

    def test_manual_event_needs_a_stored_object(self):
        with pytest.raises(TrackingError, match="not in the database"):
            audit_app.create_event(Invoice(amount=1), label="note")

    def test_bad_label_is_refused(self):
        inv = Invoice.objects.create()
        with pytest.raises(TrackingError, match="label"):
            audit_app.create_event(inv, label="no spaces allowed")


class TestMasking:
    def test_masked_value_is_never_stored(self):
        w = Widget.objects.create(name="a", secret_token="s3cr3t-value")
        w.secret_token = "other-secret"
        w.save()
        w.name = "b"
        w.save()
        markers = [e.secret_token for e in w.audit_events.all()]
        assert all(m and "s3cr3t" not in m and "other" not in m for m in markers)
        # The marker changes with the value and only with it.
        assert markers[0] != markers[1] == markers[2]
        assert Widget.audit_event_model.audit_masked == {"secret_token"}

    def test_masked_at_row_level_too(self):
        w = RowWidget.objects.create(name="a", secret_token="abc")
        (event,) = w.audit_events.all()
        assert event.secret_token not in ("abc", None)

    def test_empty_secret_gets_a_marker_and_null_stays_null(self):
        w = Widget.objects.create(name="a", secret_token="")
        assert w.audit_events.get().secret_token is not None

    def test_same_secret_on_two_rows_gives_different_markers(self):
        a = Widget.objects.create(name="a", secret_token="shared")
        b = Widget.objects.create(name="b", secret_token="shared")
        assert a.audit_events.get().secret_token != b.audit_events.get().secret_token

    def test_opt_out_stores_clear_values(self):
        c = Credential.objects.create(token="visible")
        assert c.audit_events.get().token == "visible"

    def test_user_password_hash_is_masked(self):
        user = User.objects.create_user("ann", password="pw-123456")
        (event,) = StaffUser.audit_event_model.objects.filter(audit_obj_id=user.pk)
        assert event.username == "ann"
        assert "pbkdf2" not in event.password and "md5" not in event.password

    def test_customer_api_token_is_masked(self):
        c = Customer.objects.create(name="c", email="c@example.org", api_token="tok-abc")
        assert c.audit_events.get().api_token != "tok-abc"


class TestAppendOnly:
    @pytest.mark.parametrize(
        "statement", ["UPDATE {} SET amount = 0", "DELETE FROM {}", "TRUNCATE {}"]
    )
    def test_event_table_refuses_changes(self, statement, layout):
        Invoice.objects.create()
        table = Invoice.audit_event_model._meta.db_table
        # Partitioned, each partition refuses it too, to its owner as well: a statement
        # aimed at a partition does not fire the partitioned table's triggers.
        for target in [table, *(p.name for p in partitioning.partitions(table))]:
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(statement.format(target))
        assert Invoice.audit_event_model.objects.count() == 1

    def test_event_tables_are_append_only_by_default(self):
        # Widget says nothing about it; Note's constrained reference deletes its events
        # with the object, so the default gives way there.
        Widget.objects.create(name="a")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM trackapp_widgetevent")
        note = Note.objects.create(text="x")
        note.delete()
        assert not Note.audit_event_model.objects.exists()

    def test_the_default_follows_the_setting_at_declaration(self, settings):
        settings.AUDIT_APPEND_ONLY = False
        plan = plan_event_model(Color, (), model_name="ColorPlanEvent")
        assert plan.append_only is False
        settings.AUDIT_APPEND_ONLY = True
        assert plan_event_model(Color, (), model_name="ColorPlanEvent").append_only is True
        constrained = plan_event_model(
            Color, (audit_app.InsertEvent(),), model_name="ColorPlanEvent", constrain_obj=True
        )
        assert constrained.append_only is False
        with pytest.raises(ValueError, match="append-only"):
            plan_event_model(
                Color,
                (audit_app.InsertEvent(),),
                model_name="ColorPlanEvent",
                constrain_obj=True,
                append_only=True,
            )

    def test_session_variables_do_not_switch_protection_off(self):
        Invoice.objects.create()
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('pgtrigger.ignore', '{pgtrigger_audit_append_only_x}', true)"
                )
                cursor.execute("SET LOCAL audit.disabled = 'please'")
                cursor.execute("DELETE FROM trackapp_invoiceevent")

    def test_context_rows_are_immutable(self):
        with audit_app.context(user=None, who="x"):
            Widget.objects.create(name="a")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("""UPDATE audit_app_context SET metadata = '{"who": "y"}'""")

    def test_pgtrigger_ignore_does_not_switch_capture_off(self):
        with connection.cursor() as cursor, transaction.atomic():
            cursor.execute(
                "SELECT set_config('pgtrigger.ignore', "
                "'{pgtrigger_audit_insert_1,pgtrigger_audit_update_1}', true)"
            )
            Widget.objects.create(name="a")
        assert Widget.audit_event_model.objects.count() == 1


class TestDisableTracking:
    def test_bypass_is_recorded_instead_of_events(self):
        with audit_app.context(user=None, job="import"):
            with audit_app.disable_tracking("initial import"):
                Widget.objects.bulk_create([Widget(name=str(i)) for i in range(7)])
                RowWidget.objects.create(name="r")
            Widget.objects.create(name="tracked again")
        assert Widget.audit_event_model.objects.count() == 1
        assert RowWidget.audit_event_model.objects.count() == 0
        bypasses = sorted(Bypass.objects.all(), key=lambda b: b.table_name)
        assert [(b.table_name, b.operation, b.row_count, b.reason) for b in bypasses] == [
            ("trackapp_rowwidget", "INSERT", 1, "initial import"),
            ("trackapp_widget", "INSERT", 7, "initial import"),
        ]
        assert bypasses[0].context.metadata["job"] == "import"

    def test_reason_is_required(self):
        with pytest.raises(audit_app.ContextError, match="reason"):
            with audit_app.disable_tracking(" "):
                pass


class TestInheritanceAndRelations:
    def test_parent_and_child_tables_each_keep_their_history(self):
        d = DigitalProduct.objects.create(
            sku="d", name="Ebook", price=3, download_url="https://x.org/a"
        )
        d.name = "Ebook 2"
        d.file_size_mb = 4
        d.save()
        parent_events = Product.audit_event_model.objects.filter(audit_obj_id=d.pk)
        child_events = d.audit_digitalproduct_events.all()
        assert [(e.audit_label, e.name) for e in parent_events] == [
            ("insert", "Ebook"),
            ("update", "Ebook 2"),
        ]
        assert [(e.audit_label, e.file_size_mb) for e in child_events] == [
            ("insert", 0),
            ("update", 4),
        ]
        # The child's own accessor got a generated name; the parent's is inherited.
        assert DigitalProduct.audit_event_model._meta.get_field(
            "audit_obj"
        ).remote_field.related_name == ("audit_digitalproduct_events")

    def test_many_to_many_add_and_remove(self):
        p = Product.objects.create(sku="p", name="p", price=1)
        t1, t2 = Tag.objects.create(name="a"), Tag.objects.create(name="b")
        p.tags.add(t1, t2)
        p.tags.remove(t1)
        rows = ProductTag.audit_event_model.objects.order_by("audit_id")
        assert [(e.audit_label, e.tag_id) for e in rows] == [
            ("insert", t1.pk),
            ("insert", t2.pk),
            ("delete", t1.pk),
        ]
        assert {e.product_id for e in rows} == {p.pk}

    def test_constrained_object_reference_cascades(self):
        note = Note.objects.create(text="a")
        note.text = "b"
        note.save()
        assert note.audit_events.count() == 2
        note.delete()
        assert Note.audit_event_model.objects.count() == 0

    def test_constrained_reference_refuses_delete_tracking(self):
        from audit_app.tracking import create_event_model

        class Temp(Note):
            class Meta:
                proxy = True
                app_label = "trackapp"

        with pytest.raises(ValueError, match="delete event would point at a missing row"):
            create_event_model(Temp, audit_app.DeleteEvent(), constrain_obj=True)


class TestBackfill:
    def test_backfill_writes_one_snapshot_per_row_in_batches(self):
        with audit_app.disable_tracking("fixture"):
            Widget.objects.bulk_create([Widget(name=str(i), secret_token="t") for i in range(25)])
        assert audit_app.backfill(Widget, batch_size=10) == 25
        snapshots = Widget.audit_event_model.objects.filter(audit_label="snapshot")
        assert snapshots.count() == 25
        assert snapshots.values("audit_obj_id").distinct().count() == 25
        assert "t" not in set(snapshots.values_list("secret_token", flat=True))

    def test_backfill_of_a_queryset(self):
        Widget.objects.bulk_create([Widget(name="a", size=i) for i in range(10)])
        assert (
            audit_app.backfill(Widget.objects.filter(size__lt=3), label="baseline", force=True) == 3
        )
        assert Widget.audit_event_model.objects.filter(audit_label="baseline").count() == 3

    def test_backfill_of_a_child_and_a_proxy(self):
        DigitalProduct.objects.create(sku="d", name="d", price=1, download_url="https://x.org")
        User.objects.create_user("bob")
        assert audit_app.backfill(DigitalProduct, force=True) == 1
        assert audit_app.backfill(StaffUser, force=True) == 1

    def test_untracked_model_is_refused(self):
        from tests.trackapp.models import Color

        with pytest.raises(TrackingError, match="not tracked"):
            audit_app.backfill(Color)


@pytest.mark.skipif(
    not hasattr(__import__("django.db.models").db.models, "GeneratedField"),
    reason="Django < 5.0 has no GeneratedField",
)
def test_generated_columns_are_not_copied():
    from django.db import models
    from django.db.models.functions import Lower
    from django.test.utils import isolate_apps

    from audit_app.tracking import tracked_fields

    with isolate_apps("tests.trackapp"):

        class Gen(models.Model):
            name = models.CharField(max_length=10)
            lower = models.GeneratedField(
                expression=Lower("name"),
                output_field=models.CharField(max_length=10),
                db_persist=True,
            )

            class Meta:
                app_label = "trackapp"

        assert [f.name for f in tracked_fields(Gen, None, None)] == ["id", "name"]


@pytest.mark.parametrize("label", ["x" * 33, "no spaces", "semi;colon", "ümlaut"])
def test_one_label_rule_for_trackers_and_manual_events(label):
    """Trackers, track() and create_event() refuse the same labels, saying the rule."""
    with pytest.raises(ValueError, match="1 to 32 letters, digits"):
        audit_app.ManualEvent(label)
    with pytest.raises(ValueError, match="1 to 32 letters, digits"):
        audit_app.UpdateEvent(label)


@pytest.mark.django_db
def test_create_event_refuses_a_bad_label_by_the_same_rule():
    inv = Invoice.objects.create()
    with pytest.raises(TrackingError, match="1 to 32 letters, digits"):
        audit_app.create_event(inv, label="x" * 33)
