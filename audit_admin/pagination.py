"""Page numbers from the query string, read by one rule on every page of ours."""

from __future__ import annotations

import re
from typing import Any

from django.core.paginator import InvalidPage
from django.http import Http404, HttpRequest
from django_tables2.paginators import LazyPaginator

# 1 to 9 ASCII digits without a leading zero: a number the database can turn into an
# OFFSET (deeper pages hold no rows anyway), written one way only.
_PAGE_RE = re.compile(r"[1-9][0-9]{0,8}")
#: The deepest page when a page sets no limit of its own.
NO_LIMIT = 999_999_999


class InvalidPageNumber(ValueError):
    """A page number that is not one; the message says which numbers are."""


def page_number(raw: str | None, limit: int = NO_LIMIT) -> int:
    """``raw`` (absent or empty: page 1) as a page number from 1 to ``limit``."""
    raw = raw or "1"
    if not _PAGE_RE.fullmatch(raw) or int(raw) > limit:
        raise InvalidPageNumber(f"Page numbers go from 1 to {limit}.")
    return int(raw)


def paginate_lazily(table: Any, request: HttpRequest, per_page: int) -> None:
    """Paginate ``table`` without counting rows; an impossible page is a 404.

    Only the page number comes from the query string: the order and the page size are
    the admin's. (django-tables2's ``RequestConfig`` would also take ``sort`` and
    ``per_page`` from it, and pass numbers past bigint on to the database.)
    """
    try:
        page = page_number(request.GET.get(table.prefixed_page_field))
    except InvalidPageNumber as exc:
        raise Http404("No such page.") from exc
    table.request = request
    try:
        table.paginate(paginator_class=LazyPaginator, per_page=per_page, page=page)
    except InvalidPage as exc:
        raise Http404("No such page.") from exc
