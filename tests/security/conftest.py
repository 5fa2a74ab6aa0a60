"""Shared pieces of the security proofs: the product's admin URLs, a shop, users, state.

``product_urls()`` reads the URL resolver, so a view added to ``AuditHistoryMixin`` or
``AuditEventAdmin`` is swept, checked for headers and permissions without editing the
tests. The data (users, a shop) is built by ``tests/security/world.py``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote as urlquote
from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.handlers.wsgi import WSGIRequest
from django.db import DatabaseError, connection, models, transaction
from django.http import QueryDict
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.functional import cached_property

from audit_admin import AuditHistoryMixin
from audit_admin.browser import AuditEventAdmin
from audit_app.registry import tracked_models
from tests.security.world import Shop, Users, build_shop, make_users

PLACEHOLDER = "zzplaceholder{}zz"


# -- the product's URLs ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductUrl:
    """One named admin URL that django-audit-admin adds (or takes over)."""

    name: str  # "admin:shop_order_audit_revert"
    params: tuple[str, ...]  # route parameters, in order: ("object_id", "event_key")
    model_admin: Any

    @property
    def view(self) -> str:
        """The view's kind: "history", "audit_revert", "auditevent_export", ..."""
        if isinstance(self.model_admin, AuditEventAdmin):
            return "auditevent_" + self.name.rsplit("_", 1)[1]
        opts = self.model_admin.opts
        return self.name.split(":", 1)[1].removeprefix(f"{opts.app_label}_{opts.model_name}_")

    @property
    def model(self) -> type[models.Model]:
        return self.model_admin.model

    def __str__(self) -> str:
        return self.name.split(":", 1)[1]

    def build(self, **values: str) -> str:
        """The path with ``values`` for the route parameters, percent-encoded as a browser
        would send them (``/`` included, so a value stays in its own segment as far as the
        encoding goes; Django decodes it before routing)."""
        url = reverse(
            self.name, kwargs={p: PLACEHOLDER.format(i) for i, p in enumerate(self.params)}
        )
        for i, param in enumerate(self.params):
            url = url.replace(PLACEHOLDER.format(i), urlquote(values[param], safe=""))
        return url


def _walk(resolver: URLResolver, namespace: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern, inner)
        elif pattern.name:
            yield namespace + pattern.name, pattern


def _model_admin_of(pattern: URLPattern) -> Any:
    view = inspect.unwrap(pattern.callback)
    return getattr(view, "__self__", None)


def product_urls() -> list[ProductUrl]:
    """Every admin URL of the product, found in the URL resolver.

    Names containing ``_audit_`` or ``auditevent``, plus the ``history`` view of each
    admin that uses ``AuditHistoryMixin`` (it replaces Django's history page).
    """
    found: dict[str, ProductUrl] = {}
    for name, pattern in _walk(get_resolver()):
        if not name.startswith("admin:"):
            continue
        model_admin = _model_admin_of(pattern)
        ours = "_audit_" in name or "auditevent" in name
        ours = ours or (name.endswith("_history") and isinstance(model_admin, AuditHistoryMixin))
        if not ours:
            continue
        assert model_admin is not None, f"{name}: cannot tell which ModelAdmin serves it"
        params = tuple(pattern.pattern.converters)
        found[name] = ProductUrl(name, params, model_admin)
    return sorted(found.values(), key=lambda u: u.name)


def mixin_admins() -> list[Any]:
    """The ModelAdmins on ``admin.site`` that use ``AuditHistoryMixin``."""
    return [ma for ma in admin.site._registry.values() if isinstance(ma, AuditHistoryMixin)]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def users(django_user_model) -> Users:
    return make_users()


@pytest.fixture
def shop(users) -> Shop:
    return build_shop(actor=users.editor)


# -- state ------------------------------------------------------------------------------------


def _tables() -> list[str]:
    """Tracked tables, their event tables, context, bypass records, the admin log."""
    tables = {"audit_app_context", "audit_app_bypass", "django_admin_log", "auth_user"}
    for model in tracked_models():
        tables.add(model._meta.db_table)
        tables.add(model.audit_event_model._meta.db_table)
    return sorted(tables)


def snapshot() -> dict[str, tuple[int, str]]:
    """Row count and a digest of the content of every table whose change would matter."""
    tables = _tables()
    parts = [
        f"SELECT '{t}', count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') "
        f'FROM "{t}" AS x'
        for t in tables
    ]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts))
        return {name: (count, digest) for name, count, digest in cursor.fetchall()}


def state_changes(before: dict, after: dict) -> list[str]:
    return [t for t in before if before[t] != after.get(t)]


def isolated(
    client: Any, method: str, path: str, data: Any = None, **extra: Any
) -> tuple[Any, dict | None]:
    """One request in a savepoint: (response, the state right after it, or None when the
    request left the transaction aborted). The savepoint is rolled back afterwards, so
    every request starts from the same state and a database error in one cannot spoil
    the next."""
    sid = transaction.savepoint()
    try:
        response = getattr(client, method)(path, data if data is not None else {}, **extra)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)  # the export runs while it streams
        try:
            with transaction.atomic():
                after = snapshot()
        except DatabaseError:
            after = None
    finally:
        transaction.savepoint_rollback(sid)
    return response, after


# -- URLs in responses ----------------------------------------------------------------------------

URL_ATTRIBUTES = frozenset(
    {"href", "src", "action", "formaction", "data-suggest-url", "xlink:href", "poster"}
)
_STRIP = re.compile(r"[\x00-\x20\x7f]+")


def unsafe_url(value: str) -> bool:
    """Whether ``value`` (an unescaped URL) would take a browser off-site or run script.

    Browsers ignore ASCII whitespace and control characters in the scheme and treat
    ``\\`` like ``/``, so they are removed first.
    """
    cleaned = _STRIP.sub("", value).replace("\\", "/")
    parts = urlsplit(cleaned)
    if parts.scheme.lower() not in ("", "http", "https"):
        return True
    return parts.netloc.lower() not in ("", "testserver")


class _UrlScanner(HTMLParser):
    """Collects URL attributes that are unsafe (the parser unescapes their values)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value and unsafe_url(value):
                self.found.append(f"<{tag} {name}={value[:120]!r}>")

    handle_startendtag = handle_starttag


def unsafe_urls(response: Any) -> list[str]:
    """Off-site or script URLs in the response's Location header and URL attributes."""
    found = []
    location = response.get("Location")
    if location and unsafe_url(location):
        found.append(f"Location: {location}")
    if getattr(response, "streaming", False) or "html" not in response.get("Content-Type", ""):
        return found
    scanner = _UrlScanner()
    scanner.feed(response.content.decode("utf-8", "replace"))
    scanner.close()
    return found + scanner.found


# -- which query parameters a view reads -------------------------------------------------------


class RecordingQueryDict(QueryDict):
    """A QueryDict that notes every key looked up in it (in ``READ_KEYS``)."""

    def __getitem__(self, key: str) -> Any:
        READ_KEYS.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        READ_KEYS.add(str(key))
        return super().__contains__(key)

    def get(self, key: str, default: Any = None) -> Any:
        READ_KEYS.add(key)
        return super().get(key, default)

    def _getlist(self, key: str, default: Any = None, force_list: bool = False) -> Any:
        READ_KEYS.add(key)
        return super()._getlist(key, default, force_list)


READ_KEYS: set[str] = set()


@pytest.fixture
def record_query_reads(monkeypatch) -> set[str]:
    """Make ``request.GET`` note the keys views look up; returns the (live) set of keys."""
    original = WSGIRequest.__dict__["GET"].func

    def recording(request: WSGIRequest) -> QueryDict:
        query = original(request)
        query.__class__ = RecordingQueryDict
        return query

    prop = cached_property(recording)
    prop.__set_name__(WSGIRequest, "GET")
    monkeypatch.setattr(WSGIRequest, "GET", prop)
    READ_KEYS.clear()
    yield READ_KEYS
    READ_KEYS.clear()


def pk_of(obj: Any) -> str:
    return str(quote(obj.pk))
