"""A walk through every page type of the product, by clicking as a user would.

Used by the browser proofs of escaping (``test_escaping.py``) and of the
Content-Security-Policy (``test_csp.py``): the change form with its History button,
the timeline, a version, a comparison, the revert confirmation, the deleted list, the
restore confirmation, the event browser and the bulk revert confirmation.
"""

from __future__ import annotations

from collections.abc import Callable

from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.security.world import Hostile

PAGE_TYPES = (
    "change form",
    "timeline",
    "version",
    "compare",
    "revert confirmation",
    "deleted list",
    "restore confirmation",
    "event browser",
    "bulk revert confirmation",
)


def tour(page: Page, world: Hostile, on_page: Callable[[str, Page], None]) -> list[str]:
    """Visit each page type (as a user allowed to revert), calling ``on_page`` on each."""
    visited: list[str] = []

    def arrived(name: str, body_class: str) -> None:
        expect(page.locator(f"body.{body_class}")).to_have_count(1)
        page.wait_for_load_state("load")
        on_page(name, page)
        visited.append(name)

    page.goto(reverse("admin:shop_order_change", args=[world.order.pk]))
    arrived("change form", "change-form")
    page.get_by_role("link", name="History", exact=True).click()
    arrived("timeline", "audit-history")

    page.goto(reverse("admin:shop_customer_history", args=[world.customer.pk]))
    rows = page.locator("table.audit-timeline > tbody > tr")
    expect(rows).to_have_count(2)  # created as "plain", then renamed to the payload
    rows.first.locator("a.audit-view-version").click()
    arrived("version", "audit-version")
    page.go_back()
    rows.nth(1).locator("input[name=a]").check()
    page.get_by_role("button", name="Compare").click()
    arrived("compare", "audit-compare")
    page.go_back()
    rows.nth(1).get_by_role("button", name="Revert to this version").click()
    arrived("revert confirmation", "audit-revert-confirmation")

    page.goto(reverse("admin:shop_customer_changelist"))
    page.locator("a.audit-deleted-link").click()
    arrived("deleted list", "audit-deleted-list")
    deleted = page.locator("table.audit-deleted > tbody > tr").first
    deleted.get_by_role("button", name="Restore").click()
    arrived("restore confirmation", "audit-revert-confirmation")

    page.goto(reverse("admin:audit_app_auditevent_changelist"))
    arrived("event browser", "audit-event-browser")
    page.locator("input.action-select:checked").evaluate_all(
        "boxes => boxes.forEach(box => box.click())"
    )
    for key in world.first_keys():
        page.locator(f"tr[data-event='{key}'] input.action-select").check()
    page.locator("#changelist-form select[name=action]").select_option("revert_selected")
    page.get_by_role("button", name="Go").click()
    arrived("bulk revert confirmation", "audit-bulk-revert")
    expect(page.locator("section.audit-bulk-item")).to_have_count(3)

    assert tuple(visited) == PAGE_TYPES
    return visited
