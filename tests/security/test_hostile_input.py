"""Hostile input against every admin URL of the product: never a 500, never a change.

The URLs come from the resolver (``conftest.product_urls``): a view added to the
product is swept without editing this file. Each is requested as a superuser with
malformed and foreign ids and event keys in its path, and with hostile POSTs. The
query parameters a view reads are recorded during a first request (``request.GET``
notes every key looked up, see ``conftest.record_query_reads``) and, with the fields of
its GET forms, each gets every hostile value in turn; parameters it does not read
(unknown ones, ``next``/``back``-like ones) get them all at once. Each request runs in
a savepoint that is rolled back afterwards, so a database error in one request cannot
hide another, and the state right after each request is compared with the state
before.

For every request:

- the status is below 500;
- no tracked row, event, context, bypass record or admin log entry changed (except
  the log entry an export writes by design);
- no off-site or ``javascript:`` URL appears in an ``href`` (or any URL attribute) or in
  a ``Location`` header;
- the answer, whatever it is, forbids framing (``X-Frame-Options: DENY``).

The full sets of hostile values run against the event browser and one model's pages
(``REPRESENTATIVE``: the view code is shared by every model); the other models' pages
get a smaller set of ids, keys and POSTs (their primary keys and event tables differ,
the code does not). Pages are shortened to a few rows while sweeping: the point is
the input handling, not rendering many rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from shop.models import Order
from tests.security.conftest import (
    ProductUrl,
    isolated,
    pk_of,
    product_urls,
    snapshot,
    state_changes,
    unsafe_urls,
)
from tests.security.world import Shop

pytestmark = pytest.mark.django_db

# The model whose pages get the full query-parameter sweep.
REPRESENTATIVE = Order

NUL = "\x00"
BIG = "99999999999999999999"
HUGE_TEXT = "x" * 65_536  # 64 KB
SQL = "1'; DROP TABLE x;--"

HOSTILE_IDS = [
    "abc",
    "-1",
    "0",
    BIG,
    SQL,
    NUL,
    "%00",
    "../../etc",
    "ünï\u202ecødé\u200b\ufeff",
    "١٢٣",  # Arabic-Indic digits: int() accepts them
    HUGE_TEXT,
]
HOSTILE_KEYS = [
    *HOSTILE_IDS,
    f"shop.orderevent:{BIG}",
    "shop.orderevent:0",
    "shop.orderevent:1:2",
    "SHOP.ORDEREVENT:1",
    "shop.nosuchevent:1",
    "auth.user:1",
    "admin.logentry:1",
    "audit_app.context:1",
    "audit_app.auditevent:1",
]
# Every query parameter a view reads gets each of these ...
HOSTILE_VALUES = [
    "",
    "abc",
    BIG,
    "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠",  # digits int() accepts, past bigint
    SQL,
    NUL,
    "ünï\u202ecødé\u200b\ufeff",
    HUGE_TEXT,
    "javascript:alert(1)",
    ["1", "abc"],  # the parameter twice
]
# ... and some get these too.
EXTRA_VALUES = {
    "page": ["0", "-1", "1e308", "201"],
    "per_page": ["0", "-1", "100000"],
    "object_id": ["-1", "') OR 1=1 --"],
    "q": [f"shop.order:{BIG}", "shop.order:abc", "metadata__user__gt"],
    "a": [f"shop.orderevent:{BIG}", "auth.user:1"],
    "b": [f"shop.orderevent:{BIG}", "auth.user:1"],
    "sort": ["-created_at", "label", "oldest"],
}
# Next/back-like parameters, and those a view does not read, also get these.
URL_VALUES = [
    "https://evil.example/",
    " JaVaScRiPt:alert(1)",
    "//evil.example/",
    "/\\evil.example",
    "java\tscript:alert(1)",
    "../../etc",
]
# Parameters the views (and django-tables2) read from the query string without a form
# field for them.
READ_PARAMS = {"page", "per_page", "sort", "a", "b", "q", "term"}
# Back-to / next-like parameters (Django's and common ones): never to be echoed as links.
REDIRECT_PARAMS = {"next", "back", "_changelist_filters"}
# Parameters nothing reads, and Django changelist parameters we do not support.
UNKNOWN_PARAMS = {"zz_unknown", "o", "_to_field"}
# The smaller set for the other models' pages.
FEW_IDS = ["abc", "-1", BIG, SQL, NUL, "../../etc"]
# Values of expected-version fields that must stop a confirmed revert before it writes.
# (No digit strings: a small number could be an event id, and then the revert is valid.)
TAMPERED = ["abc", "-1", "1.5", BIG, SQL, NUL, HUGE_TEXT]
BAD_FIELDS = ["zz_nope", NUL, SQL, HUGE_TEXT, "pk", "__class__"]

URLS = product_urls()


def test_the_resolver_lists_every_product_view():
    """The sweep sees the views docs/admin.md lists, for every admin using the mixin."""
    from tests.security.conftest import mixin_admins

    kinds = {u.view for u in URLS}
    assert kinds == {
        "history",
        "audit_version",
        "audit_compare",
        "audit_revert",
        "audit_deleted",
        "audit_restore",
        "auditevent_changelist",
        "auditevent_export",
        "auditevent_users",
        "auditevent_change",
    }, kinds
    for model_admin in mixin_admins():
        opts = model_admin.opts
        assert {u.view for u in URLS if u.model_admin is model_admin} == {
            "history",
            "audit_version",
            "audit_compare",
            "audit_revert",
            "audit_deleted",
            "audit_restore",
        }, opts.label


def valid_args(url: ProductUrl, shop: Shop) -> dict[str, str]:
    """Route parameters that name something real (the baseline of the sweep)."""
    values: dict[str, str] = {}
    sample = shop.sample(url.model) if url.view.startswith(("history", "audit_")) else None
    for param in url.params:
        if param == "object_id":
            values[param] = pk_of(sample.obj)
        elif param == "event_key":
            if url.view == "audit_restore":
                values[param] = sample.deleted_key
            elif url.view == "auditevent_change":
                values[param] = shop.sample(REPRESENTATIVE).event_key
            else:
                values[param] = sample.first_key
        elif param == "fmt":
            values[param] = "csv"
        else:
            raise AssertionError(
                f"{url}: the sweep does not know route parameter {param!r}; teach valid_args()"
            )
    return values


def valid_query(url: ProductUrl, shop: Shop) -> dict[str, str]:
    """Query parameters a view needs to show its page (the baseline of the sweep)."""
    if url.view == "audit_compare":
        return {"a": shop.sample(url.model).first_key, "b": "current"}
    return {}


def full_sweep(url: ProductUrl) -> bool:
    return url.view.startswith("auditevent") or url.model is REPRESENTATIVE


def path_variants(url: ProductUrl, shop: Shop) -> Iterator[tuple[str, str]]:
    """(what, path) for each hostile value of each route parameter, the others valid."""
    base = valid_args(url, shop)
    full = full_sweep(url)
    for param in url.params:
        if param == "object_id":
            candidates = list(HOSTILE_IDS if full else FEW_IDS)
            # A well-formed id of no object.
            candidates.append(str(shop.sample(url.model).obj.pk + 10_000))
        elif param == "event_key":
            candidates = list(HOSTILE_KEYS if full else [*FEW_IDS, "auth.user:1"])
            own = shop.sample(url.model) if url.view != "auditevent_change" else None
            if own is not None:
                # Another object's event, a delete event, another model's event.
                candidates.append(own.other_key)
                if url.view != "audit_restore":
                    candidates.append(own.deleted_key)
                others = [s.event_key for m, s in shop.samples.items() if m is not url.model]
                candidates += others if full else others[:1]
        else:
            candidates = [*HOSTILE_IDS, "CSV", "xlsx", "json", "csv.", "jsonl/../csv"]
        for value in candidates:
            yield f"{param}={value[:40]!r}", url.build(**{**base, param: value})
    for fmt in ("csv", "jsonl") if "fmt" in url.params else ():
        yield f"fmt={fmt}", url.build(**{**base, "fmt": fmt})


def form_params(response: Any, path: str) -> set[str]:
    """Names of the fields of the page's GET forms that submit to ``path`` itself."""
    if "html" not in response.get("Content-Type", ""):
        return set()
    page = BeautifulSoup(response.content, "html.parser")
    names = set()
    for form in page.find_all("form"):
        if (form.get("method") or "get").lower() != "get" or form.get("action", path) != path:
            continue
        fields = form.find_all(["input", "select", "textarea"])
        if form.get("id"):
            fields += page.select(f"[form='{form['id']}']")  # fields outside, form="..."
        names |= {f["name"] for f in fields if f.get("name")}
    return names


def post_payloads(url: ProductUrl, shop: Shop) -> list[dict[str, Any]]:
    """POST bodies that must never change anything: each that confirms also carries
    something that stops the revert before it writes (a tampered expected version, an
    unknown field), because a well-formed confirmed revert is allowed to write."""
    payloads: list[dict[str, Any]] = [
        {},
        {"confirm": "yes", "expected_event_id": "abc", "next": "https://evil.example/"},
        {"confirm": "yes", "fields": ["zz_nope"] * 1500},  # too many fields: a 400
    ]
    if url.view in ("audit_revert", "audit_restore"):
        tampered, bad_fields = (TAMPERED, BAD_FIELDS) if full_sweep(url) else ([NUL], [SQL])
        payloads += [{"confirm": "yes", "expected_event_id": v} for v in tampered]
        payloads += [{"confirm": "yes", "fields": v} for v in bad_fields]
        payloads.append({"confirm": "yes", "fields": ["zz_nope"], "reason": HUGE_TEXT})
    if url.view != "auditevent_changelist":
        return payloads
    keys = [s.event_key for s in shop.samples.values()]
    first = [s.first_key for s in shop.samples.values()]
    actions = ["", "zz", "delete_selected", NUL, HUGE_TEXT, "revert_selected\x00", "__init__"]
    payloads += [{"action": a, ACTION_CHECKBOX_NAME: keys} for a in actions]
    for action in ("revert_selected", "export_selected_csv", "export_selected_jsonl"):
        payloads += [{"action": action, ACTION_CHECKBOX_NAME: [k]} for k in HOSTILE_KEYS]
        payloads.append({"action": action, ACTION_CHECKBOX_NAME: ["shop.orderevent:1"] * 1001})
    for bad in TAMPERED:
        # A confirmed bulk revert whose expected versions were tampered with.
        payloads.append(
            {
                "action": "revert_selected",
                ACTION_CHECKBOX_NAME: first,
                "confirm": "yes",
                "expected_event_id": "abc",
                "fields": "zz_nope",
                **{f"expected_{k}": bad for k in first},
            }
        )
    return payloads


def check(problems: list[str], what: str, response: Any, before: dict, after: dict | None) -> None:
    status = response.status_code
    if response.get("X-Frame-Options") != "DENY":
        problems.append(f"{what}: {status} without X-Frame-Options: DENY")
    if status >= 500:
        exc = getattr(response, "exc_info", None)
        problems.append(f"{what}: {status} {exc[1]!r}"[:400] if exc else f"{what}: {status}")
        return
    if after is None:
        problems.append(f"{what}: {status}, but the transaction was left aborted")
        return
    changed = state_changes(before, after)
    if getattr(response, "streaming", False) and status == 200:
        changed = [t for t in changed if t != "django_admin_log"]  # the export's own record
    if changed:
        problems.append(f"{what}: {status} changed {changed}")
    for bad in unsafe_urls(response):
        problems.append(f"{what}: echoes an unsafe URL {bad}")


@pytest.fixture
def root_client(users, monkeypatch) -> Client:
    from django.contrib import admin

    from audit_app.models import AuditEvent
    from tests.security.conftest import mixin_admins

    # A few rows per page: the sweep is about input handling, not rendering.
    monkeypatch.setattr(admin.site._registry[AuditEvent], "list_per_page", 1)
    for model_admin in mixin_admins():
        monkeypatch.setattr(model_admin, "history_paginate_by", 3)
    client = Client(raise_request_exception=False)
    client.force_login(users.superuser)
    return client


def sweep_paths_and_posts(problems: list[str], url: ProductUrl, client: Client, shop: Shop) -> None:
    """Hostile route parameters (GET and POST; on the smaller sweep, the method the view
    serves), then hostile POST bodies on the real path."""
    path = url.build(**valid_args(url, shop))
    post_only = isolated(client, "get", path, valid_query(url, shop))[0].status_code == 405
    methods = ("get", "post") if full_sweep(url) else (("post",) if post_only else ("get",))
    before = snapshot()
    for what, hostile in path_variants(url, shop):
        for method in methods:
            data = {"confirm": "yes"} if method == "post" else None
            response, after = isolated(client, method, hostile, data)
            check(problems, f"{method.upper()} {hostile[:100]} ({what})", response, before, after)
    for payload in post_payloads(url, shop):
        response, after = isolated(client, "post", path, payload)
        shown = {k: (v[:30] if isinstance(v, str) else f"[{len(v)}]") for k, v in payload.items()}
        check(problems, f"POST {path} {shown}", response, before, after)


# One test per admin (its URLs share the data a test builds).
ADMINS = {u.model._meta.label_lower: u.model_admin for u in URLS}


@pytest.mark.parametrize("model_admin", ADMINS.values(), ids=ADMINS.keys())
def test_hostile_paths_and_posts(model_admin, root_client, shop):
    urls = [u for u in URLS if u.model_admin is model_admin]
    assert urls
    problems: list[str] = []
    for url in urls:
        sweep_paths_and_posts(problems, url, root_client, shop)
    assert not problems, "\n".join(problems)


SWEPT = [u for u in URLS if full_sweep(u)]
# The export reads the browser's filters: the values most likely to reach SQL suffice.
SHORT_VALUES = ["", BIG, "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠", SQL, NUL, HUGE_TEXT, "javascript:alert(1)"]


def read_params(client: Client, path: str, query: dict, reads: set[str]) -> tuple[Any, set[str]]:
    """(response, the query keys the view looked up) of a request with ``query``."""
    reads.clear()
    response, _ = isolated(client, "get", path, query)
    return response, set(reads)


@pytest.mark.parametrize("url", SWEPT, ids=str)
def test_hostile_query_parameters(url, root_client, shop, record_query_reads):
    """Each parameter the view reads gets every hostile value, one at a time; the
    parameters it does not read get them all at once."""
    path = url.build(**valid_args(url, shop))
    query = valid_query(url, shop)
    # An unknown parameter makes the filters bound, so the view reads every one of them.
    baseline, read = read_params(root_client, path, {**query, "zz_probe": "1"}, record_query_reads)
    assert baseline.status_code in (200, 302, 405), (path, baseline.status_code)
    read |= form_params(baseline, path)
    unread = (READ_PARAMS | REDIRECT_PARAMS | UNKNOWN_PARAMS) - read
    values = SHORT_VALUES if url.view == "auditevent_export" else HOSTILE_VALUES
    before = snapshot()
    problems: list[str] = []

    def run(params: dict, shown: str) -> None:
        response, after = isolated(root_client, "get", path, {**query, **params})
        check(problems, f"GET {path}?{shown}", response, before, after)

    for param in sorted(read):
        extra = EXTRA_VALUES.get(param, [])
        if param in REDIRECT_PARAMS:
            extra = extra + URL_VALUES
        for value in values + extra:
            run({param: value}, f"{param}={value[:30] if isinstance(value, str) else value!r}")
    for value in HOSTILE_VALUES + URL_VALUES:
        run(dict.fromkeys(unread, value), f"{sorted(unread)}={str(value)[:30]!r}")
    assert not problems, "\n".join(problems)


def test_the_sweep_sees_the_parameters_each_view_reads(root_client, shop, record_query_reads):
    """The discovery finds the filters (so the sweep is not silently empty)."""
    by_view = {u.view: u for u in SWEPT}

    def found(view: str, query: dict | None = None) -> set[str]:
        url = by_view[view]
        path = url.build(**valid_args(url, shop))
        response, read = read_params(
            root_client, path, {**(query or {}), "zz_probe": "1"}, record_query_reads
        )
        return read | form_params(response, path)

    assert {"user", "action", "created_at_after", "created_at_before", "field", "page"} <= found(
        "history"
    )
    browser = {"user", "model", "action", "object_id", "request_id", "context_key", "q", "page"}
    assert browser | {"context_value", "sort"} <= found("auditevent_changelist")
    assert browser - {"page"} <= found("auditevent_export")
    assert {"q", "page"} <= found("audit_deleted")
    assert {"a", "b"} <= found("audit_compare", valid_query(by_view["audit_compare"], shop))
    assert "term" in found("auditevent_users")


# -- regressions found by the sweep ------------------------------------------------------------


@pytest.fixture
def long_history(shop) -> str:
    """The representative object's timeline path, with 6 events (2 pages of 3)."""
    import audit_app

    sample = shop.sample(REPRESENTATIVE)
    for i in range(4):
        # One request per save: one change set each on the timeline.
        with audit_app.context(username="sweeper", request_id=f"sweep {i}"):
            sample.obj.notes = f"note {i}"
            sample.obj.save()
    history = next(u for u in URLS if u.view == "history" and u.model is REPRESENTATIVE)
    return history.build(object_id=pk_of(sample.obj))


def timeline_rows(response: Any) -> list[str]:
    page = BeautifulSoup(response.content, "html.parser")
    return [tr.get("id", "") for tr in page.select("table.audit-timeline > tbody > tr[id]")]


@pytest.mark.parametrize(
    ("page", "status"),
    [
        (BIG, 404),  # was a 500: OFFSET past bigint
        ("١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠", 404),  # was a 500: int() reads these digits
        ("1000000000", 404),
        ("0", 404),
        ("-1", 404),
        ("abc", 404),
        ("01", 404),  # one spelling per page: no leading zero
        ("1\n", 404),
        ("1", 200),
        ("2", 200),
        ("3", 404),  # past the last page
    ],
)
def test_history_pages_take_a_page_number_of_at_most_nine_digits(
    root_client, long_history, page, status
):
    assert root_client.get(long_history, {"page": page}).status_code == status
    deleted = next(u for u in URLS if u.view == "audit_deleted" and u.model is REPRESENTATIVE)
    expected = status if page not in ("2",) else 404  # one deleted order: one page
    assert root_client.get(deleted.build(), {"page": page}).status_code == expected


def test_history_order_and_page_size_are_not_taken_from_the_query_string(root_client, long_history):
    """``per_page`` past bigint was a 500, and ``sort`` reached django-tables2's ordering."""
    path = long_history
    newest_first = timeline_rows(root_client.get(path))
    assert len(newest_first) == 3  # history_paginate_by is 3 here (root_client)
    for params in ({"per_page": BIG}, {"per_page": "1"}, {"sort": "created_at"}, {"sort": "a.b"}):
        response = root_client.get(path, params)
        assert response.status_code == 200, params
        assert timeline_rows(response) == newest_first, params


def test_deleted_list_search_with_nul_finds_nothing(root_client, shop):
    """Was a 500: PostgreSQL text cannot hold NUL, so the search can match nothing."""
    deleted = next(u for u in URLS if u.view == "audit_deleted" and u.model is REPRESENTATIVE)
    rows = "table.audit-deleted tbody tr form"
    assert BeautifulSoup(root_client.get(deleted.build()).content, "html.parser").select(rows)
    response = root_client.get(deleted.build(), {"q": "Sample\x00"})
    assert response.status_code == 200
    assert not BeautifulSoup(response.content, "html.parser").select(rows)


def test_the_unsafe_url_check_catches_script_and_off_site_links():
    """The sweep's link check itself: it must see these, and only these."""
    from django.http import HttpResponse, HttpResponseRedirect

    bad = [
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "&#106;avascript:alert(1)",  # an entity, unescaped by the browser (and the parser)
        "data:text/html,<script>alert(1)</script>",
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
    ]
    good = [
        "/admin/shop/order/",
        "?next=javascript%3Aalert%281%29",
        "?back=https%3A%2F%2Fevil.example%2F",
        "http://testserver/admin/",
        "#content",
        "",
    ]
    for value in bad:
        html = f'<a href="{value}">x</a>'
        assert unsafe_urls(HttpResponse(html)), value
        assert unsafe_urls(HttpResponse(f'<form action="{value}"></form>')), value
    for value in good:
        assert not unsafe_urls(HttpResponse(f'<a href="{value}">x</a>')), value
    redirect = HttpResponseRedirect("/admin/")
    redirect["Location"] = "https://evil.example/"
    assert unsafe_urls(redirect)
