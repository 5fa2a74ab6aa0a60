"""Sealing without a database: the row encoding's SQL, id runs, the record format, heads."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest

from audit_app import chain, heads
from audit_app import sealing_sql as ssql
from audit_app.exceptions import HeadsError
from audit_app.sealed_rows import compare_rows

INT8, TEXT, JSONB, TIMESTAMPTZ = 20, 25, 3802, 1184


def columns(*specs):
    return [ssql.Column(name, key, oid) for name, key, oid in specs]


# -- canonical keys ----------------------------------------------------------------------------


def test_a_columns_key_is_its_comment_or_its_name():
    assert ssql.key_of("status", None) == "status"
    assert ssql.key_of("status", "shown in reports") == "status"
    assert ssql.key_of("status__retired_1", "audit:key=status") == "status"
    assert ssql.key_of("state", "audit:key= status ") == "status"


class FakeCursor:
    def __init__(self, rows):
        self.rows = rows

    def execute(self, statement, params=None):
        self.params = params

    def fetchall(self):
        return self.rows


def test_canonical_columns_read_the_catalog_and_refuse_shared_keys():
    cursor = FakeCursor([("audit_id", None, INT8), ("old_status", "audit:key=status", TEXT)])
    assert ssql.canonical_columns(cursor, "shop_orderevent") == [
        ("audit_id", "audit_id"),
        ("old_status", "status"),
    ]
    assert cursor.params == ['"shop_orderevent"']
    clash = FakeCursor([("status", None, TEXT), ("old_status", "audit:key=status", TEXT)])
    with pytest.raises(ssql.SchemaError, match=r"'status' and 'old_status'.*audit:key="):
        ssql.sealed_columns(clash, "shop_orderevent")
    with pytest.raises(ssql.SchemaError, match="audit:context"):
        ssql.sealed_columns(FakeCursor([("x", "audit:key=audit:context", TEXT)]), "t")


# -- the row encoding --------------------------------------------------------------------------


def test_plain_scalars_are_encoded_in_binary_everything_else_as_utf8_text():
    assert ssql.value_sql('e."n"', INT8) == 'int8send(e."n")'
    assert ssql.value_sql('e."at"', TIMESTAMPTZ) == 'timestamptz_send(e."at")'
    assert ssql.value_sql('e."data"', JSONB) == "convert_to(e.\"data\"::text, 'UTF8')"
    assert "hash_record(ROW(" in ssql.fingerprint_sql('e."n"', INT8)
    assert ssql.fingerprint_sql('e."t"', TEXT) == 'coalesce(hashtext(e."t"::text), 0)'


def test_the_row_follows_the_sealed_keys_whatever_the_columns_are_called_now():
    now = columns(("audit_id", "audit_id", INT8), ("state_v1", "status", TEXT))
    row = ssql.row_sql(("audit_id", "status"), now)
    assert 'int8send(e."audit_id")' in row and "e.\"state_v1\"::text, 'UTF8'" in row
    assert row.startswith('substr(sha256(record_send(ROW(int8send(e."audit_id"), convert_to(')
    # The context's digest is the last value of the row, and has the last fingerprint.
    assert "c.digest)))" in row and "get_byte(c.digest, 0)" in row


def test_a_sealed_key_without_a_column_reads_as_null_and_a_new_column_only_when_set():
    now = columns(("audit_id", "audit_id", INT8), ("note", "note", TEXT))
    row = ssql.row_sql(("audit_id", "status"), now)
    assert "NULL::bytea" in row
    assert "CASE WHEN e.\"note\" IS NULL THEN ''::bytea ELSE record_send(ROW(" in row
    assert "convert_to('note', 'UTF8')" in row
    added = ssql.added_columns_sql("t", ("audit_id", "status"), now)
    assert "CASE WHEN t.\"note\" IS NOT NULL THEN 'note' END" in added
    assert ssql.added_columns_sql("t", ("audit_id", "note"), now) is None


def test_fingerprints_are_packed_four_to_an_int8():
    assert ssql.fingerprint_count(["a", "b", "c"]) == 4  # three keys and the context
    assert ssql.fingerprint_count(["a", "b", "c", "d"]) == 8
    assert ssql.row_size(["a", "b", "c"]) == 16 + 8
    row = ssql.row_sql(
        ("a", "b", "c"), columns(("a", "a", INT8), ("b", "b", INT8), ("c", "c", INT8))
    )
    assert row.count("int8send((") == 1


def test_chunk_sql_digests_each_context_row_once_and_orders_by_id():
    now = columns(("audit_id", "audit_id", INT8), ("audit_context_id", "audit_context_id", INT8))
    context = columns(("id", "id", INT8), ("metadata", "metadata", JSONB))
    encoding = ssql.Encoding(("audit_context_id", "audit_id"), ("id", "metadata"))
    text = ssql.chunk_sql("shop_orderevent", encoding, now, context, "t.audit_id > %s")
    assert (
        'FROM "shop_orderevent" AS t WHERE t.audit_id > %s ORDER BY t."audit_id" LIMIT 4096' in text
    )
    assert 'SELECT DISTINCT "audit_context_id" AS id FROM e' in text
    assert 'ORDER BY e."audit_id")' in text


def test_runs_become_where_clauses():
    assert ssql.runs_where([[1, 3], [7, 7]]) == (
        '(t."audit_id" BETWEEN %s AND %s OR t."audit_id" = %s)',
        [1, 3, 7],
    )
    assert ssql.runs_where([]) == ("FALSE", [])
    assert ssql.after_where(5, 9) == ('t."audit_id" > %s AND t."audit_id" <= %s', [5, 9])


# -- id runs -----------------------------------------------------------------------------------


def test_runs_of_ids_and_back():
    assert chain.runs_of([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]
    assert chain.ids_of([[1, 3], [7, 7]]) == [1, 2, 3, 7]
    assert chain.count_of([[1, 3], [7, 7]]) == 4
    assert chain.runs_text([[1, 3], [7, 7]]) == "1-3, 7"
    assert chain.runs_text([[i, i] for i in range(0, 20, 2)], limit=2) == "0, 2, and 8 more ranges"


def test_gaps_union_and_difference_of_runs():
    assert chain.gaps_between(0, 12, [[2, 3], [7, 9]]) == [[1, 1], [4, 6], [10, 12]]
    assert chain.gaps_between(5, 5, []) == []
    assert chain.merge_runs([[5, 7]], [[1, 2], [3, 4]], [[6, 9]]) == [[1, 9]]
    assert chain.subtract_runs([[1, 10]], [[3, 4], [8, 20]]) == [[1, 2], [5, 7]]
    members = chain.RunSet([[1, 3], [10, 10]])
    assert [i for i in range(12) if i in members] == [1, 2, 3, 10]


# -- records -----------------------------------------------------------------------------------


def test_record_hash_is_canonical_and_covers_every_field():
    at = datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.timezone.utc)
    fields = {"seq": 1, "details": {"b": [1], "a": "x"}, "root": b"\x01", "created_at": at}
    same = {"created_at": at.astimezone(datetime.timezone(datetime.timedelta(hours=2))),
            "root": b"\x01", "details": {"a": "x", "b": [1]}, "seq": 1}  # fmt: skip
    assert chain.record_hash(fields) == chain.record_hash(same)
    for key, value in [("seq", 2), ("details", {"b": [2], "a": "x"}), ("root", b"\x02")]:
        assert chain.record_hash({**fields, key: value}) != chain.record_hash(fields)
    assert chain.canonical({"t": at}) == b'{"t":"2026-01-01T12:00:00.000000+00:00"}'


def test_chunk_hash_covers_ids_and_rows_and_the_root_their_order():
    a, b = chain.chunk_hash([[1, 2]], b"xy"), chain.chunk_hash([[1, 3]], b"xy")
    assert a != b != chain.chunk_hash([[1, 2]], b"xz")
    assert chain.root_of([a, b]) != chain.root_of([b, a])


def test_compare_rows_finds_missing_and_changed_rows_and_their_fingerprints():
    size = 16 + 8
    row = lambda digest, *prints: bytes([digest]) * 16 + bytes(prints)  # noqa: E731
    stored = (
        row(1, 0, 1, 0, 2, 0, 3, 0, 4)
        + row(2, 0, 1, 0, 2, 0, 3, 0, 4)
        + row(3, 0, 0, 0, 0, 0, 0, 0, 0)
    )
    assert compare_rows([[10, 12]], stored, [10, 11, 12], stored, size) == ([], [])
    found = row(1, 0, 1, 0, 2, 0, 3, 0, 4) + row(9, 0, 1, 9, 9, 0, 3, 0, 4)
    missing, changed = compare_rows([[10, 12]], stored, [10, 11], found, size)
    assert missing == [12]
    assert changed == [(11, [1])]


# -- heads -------------------------------------------------------------------------------------


def record(seq=7):
    return SimpleNamespace(
        seq=seq,
        hash=bytes(range(32)),
        created_at=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        method="hmac-sha256",
        key_id="0123456789abcdef",
        authenticator=b"\xff" * 32,
    )


def test_a_head_is_one_line_that_reads_back():
    line = heads.format_head(record())
    assert "\n" not in line and line.startswith("audit-seal-head v1 seq=7 hash=000102")
    (head,) = heads.parse_heads(f"# kept in the ticket\n\n{line}\n")
    assert (head.seq, head.hash, head.method, head.key_id) == (
        7,
        bytes(range(32)),
        "hmac-sha256",
        "0123456789abcdef",
    )
    assert head.authenticator == b"\xff" * 32 and head.line == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no heads"),
        ("hello world\n", "Line 1 of the heads file is not a head"),
        ("audit-seal-head v1 seq=1 hash=00\n", "Line 1 of the heads file lacks key, auth"),
        (
            "audit-seal-head v1 seq=x hash=00 key=a:b auth=00\n",
            "Line 1 of the heads file is damaged",
        ),
        ("audit-seal-head v1 seq=1 hash=zz key=a:b auth=00\n", "is damaged"),
    ],
)
def test_bad_heads_files_say_which_line(text, message):
    with pytest.raises(HeadsError, match=message):
        heads.parse_heads(text)


def test_an_unreadable_heads_file_is_a_clear_error(tmp_path):
    with pytest.raises(HeadsError, match="cannot be read"):
        heads.read_heads(str(tmp_path / "missing.txt"))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(HeadsError, match="cannot be read"):
        heads.read_heads(str(binary))


def test_write_head_appends(tmp_path):
    path = tmp_path / "heads.log"
    heads.write_head(record(1), str(path))
    heads.write_head(record(2), str(path))
    assert [h.seq for h in heads.read_heads(str(path))] == [1, 2]
