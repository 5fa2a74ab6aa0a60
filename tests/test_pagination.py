"""The page-number rule every page of ours reads its ``?page=`` by."""

import pytest

from audit_admin.pagination import NO_LIMIT, InvalidPageNumber, page_number


@pytest.mark.parametrize(("raw", "page"), [(None, 1), ("", 1), ("1", 1), ("42", 42)])
def test_a_page_number_is_read(raw, page):
    assert page_number(raw) == page


@pytest.mark.parametrize(
    "raw", ["0", "01", "-1", "1.5", "1e3", " 1", "1\n", "\u0661", "1000000000"]
)
def test_anything_else_is_refused_with_the_range(raw):
    with pytest.raises(InvalidPageNumber, match=f"from 1 to {NO_LIMIT}"):
        page_number(raw)


def test_a_page_past_the_limit_is_refused():
    assert page_number("200", limit=200) == 200
    with pytest.raises(InvalidPageNumber, match="from 1 to 200"):
        page_number("201", limit=200)
