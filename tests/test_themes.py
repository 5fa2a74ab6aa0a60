"""Admin themes: the template lookup with ``AUDIT_ADMIN_THEME``, and the unfold theme's
templates checked against the unfold release installed (its precompiled CSS has only
the utility classes unfold itself uses). The themed pages in a browser:
``tests/e2e/test_unfold_theme.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse
from django.test import RequestFactory, override_settings
from django.urls import reverse

from audit_admin import themes
from audit_admin.history import HistoryPage
from audit_app.models import AuditEvent
from shop.models import Order

ROOT = Path(__file__).resolve().parents[1]
UNFOLD_TEMPLATES = ROOT / "templates" / "audit_admin" / "themes" / "unfold"
# Class names that are hooks of Django's admin, its scripts or unfold's, not styles.
HOOKS = {
    "action-counter", "actions", "aligned", "cancel-link", "changelist-form-container",
    "default", "field-", "field-line", "form-row", "form-rows", "help", "module",
    "readonly", "submit-row",
}  # fmt: skip


def history_page(rf: RequestFactory) -> HistoryPage:
    return HistoryPage(admin.site._registry[Order], rf.get("/"), None)


def test_without_a_theme_pages_use_the_stock_templates(rf):
    assert history_page(rf).template("object_history.html") == [
        "audit_admin/shop/order/object_history.html",
        "audit_admin/shop/object_history.html",
        "audit_admin/object_history.html",
    ]
    assert admin.site._registry[AuditEvent].get_template_names(rf.get("/"), "change_list.html") == [
        "audit_admin/audit_app/auditevent/events/change_list.html",
        "audit_admin/events/change_list.html",
    ]


@override_settings(AUDIT_ADMIN_THEME="unfold")
def test_the_theme_comes_after_project_overrides_and_before_the_stock_template(rf):
    assert history_page(rf).template("deleted_list.html") == [
        "audit_admin/shop/order/deleted_list.html",
        "audit_admin/shop/deleted_list.html",
        "audit_admin/themes/unfold/deleted_list.html",
        "audit_admin/deleted_list.html",
    ]
    assert admin.site._registry[AuditEvent].get_template_names(
        rf.get("/"), "revert_confirmation.html"
    ) == [
        "audit_admin/audit_app/auditevent/events/revert_confirmation.html",
        "audit_admin/themes/unfold/events/revert_confirmation.html",
        "audit_admin/events/revert_confirmation.html",
    ]


@override_settings(AUDIT_ADMIN_THEME="unfold")
def test_use_theme_swaps_only_our_own_default_template(rf):
    ours = TemplateResponse(rf.get("/"), "audit_admin/change_list.html")
    themes.use_theme(ours, "audit_admin/change_list.html", "change_list.html")
    assert ours.template_name == [
        "audit_admin/themes/unfold/change_list.html",
        "audit_admin/change_list.html",
    ]
    projects = TemplateResponse(rf.get("/"), "shop/order_changelist.html")
    themes.use_theme(projects, "audit_admin/change_list.html", "change_list.html")
    assert projects.template_name == "shop/order_changelist.html"


@pytest.mark.django_db
@override_settings(AUDIT_ADMIN_THEME="unfold")
def test_the_changelist_and_the_user_form_get_the_themes_templates(rf, admin_user):
    # Not rendered: the theme's templates load unfold's tags, not installed here.
    request = rf.get(reverse("admin:shop_order_changelist"))
    request.user = admin_user
    response = admin.site._registry[Order].changelist_view(request)
    assert response.template_name == [
        "audit_admin/themes/unfold/change_list.html",
        "audit_admin/change_list.html",
    ]
    user_admin = admin.site._registry[get_user_model()]
    request = rf.get(reverse("admin:auth_user_change", args=[admin_user.pk]))
    request.user = admin_user
    response = user_admin.change_view(request, str(admin_user.pk))
    assert response.template_name == [
        "audit_admin/themes/unfold/events/activity_change_form.html",
        "audit_admin/events/activity_change_form.html",
    ]


def test_every_page_a_theme_may_provide_has_a_stock_template():
    for name in themes.PAGE_TEMPLATES:
        assert (ROOT / "templates" / "audit_admin" / name).is_file(), name


def theme_templates() -> list[Path]:
    return sorted(UNFOLD_TEMPLATES.rglob("*.html"))


def test_unfold_theme_templates_add_no_inline_script_or_style():
    for path in theme_templates():
        text = re.sub(r"\{%.*?%\}|\{\{.*?\}\}", "", path.read_text(), flags=re.S)
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert not re.search(r"\s(on[a-z]+|style|x-[a-z:.-]+|@[a-z.:-]+)=", text), path
        assert "<style" not in text, path


def test_unfold_theme_uses_only_classes_unfolds_css_has():
    unfold = pytest.importorskip("unfold", reason="django-unfold is part of the dev extra")
    css = (Path(unfold.__file__).parent / "static" / "unfold" / "css" / "styles.css").read_text()
    missing = set()
    for path in theme_templates():
        for value in re.findall(r'class="([^"]*)"', path.read_text()):
            for name in re.sub(r"\{\{.*?\}\}|\{%.*?%\}", " ", value).split():
                if name.startswith("audit-") or name in HOOKS:
                    continue
                selector = "." + re.sub(r"([^A-Za-z0-9_-])", r"\\\1", name)
                if not re.search(re.escape(selector) + r"(?![A-Za-z0-9_\\-])", css):
                    missing.add(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, sorted(missing)


def test_a_projects_own_theme_is_known_by_its_templates(tmp_path, settings):
    page = tmp_path / "audit_admin" / "themes" / "grappelli" / "object_history.html"
    page.parent.mkdir(parents=True)
    page.write_text('{% extends "audit_admin/object_history.html" %}')
    assert not themes.is_known("grappelli")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    assert themes.is_known("grappelli")
    assert not themes.is_known("Grappelli/../x")
