"""The SQL that picks each event's column of a field, and field descriptions (no database)."""

from decimal import Decimal

from django.db import models

from audit_app.column_history import FieldValues, Segment, describe, describe_back
from tests.trackapp.models import Color


def test_a_plain_field_reads_its_column_for_every_event():
    values = FieldValues("name", (Segment("name"),))
    assert values.plain
    assert values.value_sql("e") == 'e."name"'
    assert values.present_sql("e") is None


def test_a_retyped_field_picks_the_column_by_event_id():
    values = FieldValues(
        "code", (Segment("code", after=7), Segment("audit_retired1_code", until=7))
    )
    assert not values.plain
    assert values.jsonb_sql("e") == (
        'CASE WHEN e.audit_id > 7 THEN to_jsonb(e."code") '
        'WHEN e.audit_id <= 7 THEN to_jsonb(e."audit_retired1_code") ELSE NULL END'
    )
    assert values.present_sql("e") == "(e.audit_id > 7) OR (e.audit_id <= 7)"


def test_an_added_field_is_absent_from_earlier_events():
    values = FieldValues("status", (Segment("status", after=41),))
    assert values.present_sql("p") == "(p.audit_id > 41)"


def test_decimals_read_as_text_and_masked_fields_as_markers():
    price = FieldValues("price", (Segment("price", after=3, as_text=True),))
    assert 'to_jsonb(e."price"::text)' in price.jsonb_sql("e")
    token = FieldValues("token", (Segment("token", until=3), Segment("t2", after=3)), masked=True)
    # Markers are text in every segment: compared as stored, never as jsonb.
    assert token.value_sql("e") == token.column_sql("e")
    assert "to_jsonb" not in token.value_sql("e")


def test_a_description_reads_back_into_a_field_of_the_recorded_type():
    price = models.DecimalField("unit price", max_digits=8, decimal_places=3)
    field = describe_back("price", "unit price", describe(price))
    assert isinstance(field, models.DecimalField)
    assert (field.decimal_places, str(field.verbose_name)) == (3, "unit price")
    assert field.to_python("1.234") == Decimal("1.234")
    status = models.CharField(max_length=5, choices=[("n", "New"), ("d", "Done")])
    assert describe_back("status", "status", describe(status)).flatchoices == [
        ("n", "New"),
        ("d", "Done"),
    ]


def test_a_described_foreign_key_reads_back_while_its_model_exists():
    color = models.ForeignKey(Color, on_delete=models.CASCADE)
    description = describe(color)
    assert description["kwargs"]["to"] == "trackapp.color"
    assert describe_back("color", "color", description).related_model is Color
    gone = {**description, "kwargs": {"to": "trackapp.gone"}}
    assert isinstance(describe_back("color", "color", gone), models.TextField)
    assert isinstance(describe_back("x", "x", {"path": "no.such.Field"}), models.TextField)
