"""The pure SQL generator, read without a database."""

import re

from audit_app import sql

SPEC = sql.EventSpec(
    table="shop_order",
    event_table="shop_orderevent",
    pk_column="id",
    columns=("id", "status", "api_token"),
    masked=frozenset({"api_token"}),
)


def test_default_update_joins_old_and_new_rows_by_primary_key():
    body = sql.statement_trigger_body(
        SPEC,
        label="update",
        operation="UPDATE",
        row="NEW",
        condition_sql=sql.any_change_sql(SPEC.columns),
    )
    # Planned once per session (no EXECUTE: re-planning costs ~190 us per save); the
    # trigger function is pinned to hash joins instead (see test_triggers_sql below).
    assert "EXECUTE" not in body and "EXCEPT" not in body
    assert 'FROM "audit_new" AS n LEFT JOIN "audit_old" AS o ON o."id" = n."id"' in body
    assert 'WHERE o."id" IS NULL OR (o."id" IS DISTINCT FROM n."id" OR ' in body
    assert "OLD." not in body and "NEW." not in body


def test_update_condition_on_old_values_joins_old_rows():
    body = sql.statement_trigger_body(
        SPEC,
        label="update",
        operation="UPDATE",
        row="NEW",
        condition_sql=sql.any_change_sql(["status"]),
    )
    assert 'LEFT JOIN "audit_old" AS o ON o."id" = n."id"' in body
    assert 'WHERE o."id" IS NULL OR (o."status" IS DISTINCT FROM n."status")' in body


def test_only_functions_that_join_are_pinned_to_hash_joins():
    template = sql.AuditTriggerSql(
        pgid="f",
        func="RETURN NULL;",
        table="t",
        when="AFTER",
        operation="UPDATE",
        settings=sql.JOIN_PLAN_SETTINGS,
    )
    assert "$$ LANGUAGE plpgsql SET enable_nestloop = off SET enable_mergejoin = off;" in str(
        template
    )
    assert template.deconstruct()[2]["settings"] == sql.JOIN_PLAN_SETTINGS
    plain = sql.AuditTriggerSql(
        pgid="f", func="RETURN NULL;", table="t", when="AFTER", operation="INSERT"
    )
    assert "$$ LANGUAGE plpgsql;" in str(plain) and "settings" not in plain.deconstruct()[2]
    assert sql.joins_old_rows("UPDATE", sql.any_change_sql(["a"]))
    assert not sql.joins_old_rows("UPDATE", 'NEW."a" = 1')
    assert not sql.joins_old_rows("DELETE", "")


def test_statement_insert_reads_only_the_new_rows():
    body = sql.statement_trigger_body(SPEC, label="insert", operation="INSERT", row="NEW")
    assert 'FROM "audit_new" AS n;' in body and "JOIN" not in body


def test_condition_on_new_values_needs_no_join():
    body = sql.statement_trigger_body(
        SPEC, label="paid", operation="UPDATE", row="NEW", condition_sql="NEW.\"status\" = 'paid'"
    )
    assert "JOIN" not in body and "WHERE n.\"status\" = 'paid'" in body


def test_context_is_looked_up_once_per_statement():
    body = sql.statement_trigger_body(SPEC, label="delete", operation="DELETE", row="OLD")
    assert "(SELECT audit_app_context_id())" in body
    assert 'FROM "audit_old" AS o;' in body


def test_masked_columns_store_markers_never_values():
    body = sql.row_trigger_body(SPEC, label="insert", row="NEW")
    assert 'NEW."api_token")' not in body.replace('NEW."api_token"::text', "")
    assert 'sha256(convert_to(NEW."api_token"::text' in body


def test_no_exception_blocks_and_no_percent_signs_in_generated_sql():
    bodies = [
        sql.statement_trigger_body(
            SPEC,
            label="u",
            operation="UPDATE",
            row="NEW",
            condition_sql=sql.any_change_sql(SPEC.columns),
        ),
        sql.row_trigger_body(SPEC, label="u", row="NEW"),
        sql.append_only_body("t"),
        sql.CONTEXT_FUNCTION_SQL,
    ]
    for body in bodies:
        assert not re.search(r"\bEXCEPTION\s+WHEN\b", body, re.IGNORECASE)
        assert "%" not in body


def test_installation_template_has_no_ignore_switch():
    rendered = str(
        sql.AuditTriggerSql(
            pgid="pgtrigger_x_1", func="RETURN NULL;", table="t", when="AFTER", operation="INSERT"
        )
    )
    assert "_pgtrigger_should_ignore" not in rendered and "pgtrigger.ignore" not in rendered


def test_primary_key_must_be_tracked_and_unmasked():
    import pytest

    with pytest.raises(ValueError, match="primary key"):
        sql.EventSpec(table="t", event_table="e", pk_column="id", columns=("a",))
    with pytest.raises(ValueError, match="masked"):
        sql.EventSpec(
            table="t", event_table="e", pk_column="id", columns=("id",), masked=frozenset({"id"})
        )
