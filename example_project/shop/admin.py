"""Admin registration of the example shop.

Ordinary ModelAdmins plus ``AuditHistoryMixin``, which is all a project adds to get
the history timeline, versions, compare, revert and restore of deleted objects.
"""

import django
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db import models

from audit_admin import AuditActivityMixin, AuditHistoryMixin
from shop.models import Customer, DigitalProduct, Order, OrderItem, Product, Tag


@admin.register(Customer)
class CustomerAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("name", "email", "phone", "created_at")
    search_fields = ("name", "email", "phone")
    list_filter = ("created_at",)
    date_hierarchy = "created_at"
    readonly_fields = ("created_at",)


@admin.register(Tag)
class TagAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("name",)
    search_fields = ("name",)


@admin.register(Product)
class ProductAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("name", "sku", "category", "price", "active")
    list_filter = ("category", "active", "tags")
    list_editable = ("active",)
    search_fields = ("name", "sku", "description")
    filter_horizontal = ("tags",)
    fieldsets = (
        (None, {"fields": ("sku", "name", "category", "price", "active")}),
        ("Details", {"fields": ("description", "attributes", "tags")}),
    )


@admin.register(DigitalProduct)
class DigitalProductAdmin(ProductAdmin):
    if django.VERSION >= (5, 0):
        # Django 5 warns until forms pick a default scheme for bare domains; use https.
        formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("name", "sku", "category", "price", "file_size_mb", "active")
    fieldsets = (
        *ProductAdmin.fieldsets,
        ("Download", {"fields": ("download_url", "file_size_mb")}),
    )


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    autocomplete_fields = ("product",)

    def get_queryset(self, request):
        # Each row's label names its product.
        return super().get_queryset(request).select_related("product")


@admin.register(Order)
class OrderAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("__str__", "customer", "status", "total", "placed_at")
    list_filter = ("status", "placed_at")
    list_select_related = ("customer",)
    search_fields = ("customer__name", "customer__email", "notes")
    date_hierarchy = "placed_at"
    autocomplete_fields = ("customer",)
    readonly_fields = ("placed_at",)
    inlines = (OrderItemInline,)

    def get_search_results(self, request, queryset, search_term):
        """Also find an order by its number ("42" or "#42")."""
        base = queryset
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        number = search_term.strip().removeprefix("#")
        if number.isascii() and number.isdigit() and len(number) < 19:
            queryset |= base.filter(pk=int(number))
        return queryset, may_have_duplicates


@admin.register(OrderItem)
class OrderItemAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("__str__", "order", "product", "quantity")
    list_select_related = ("order", "product")
    list_filter = ("product__category",)
    search_fields = ("product__name", "product__sku", "order__customer__name")
    autocomplete_fields = ("order", "product")


# Django's own UserAdmin, plus an "Activity" button that opens the event browser
# filtered to the user.
admin.site.unregister(User)


@admin.register(User)
class ShopUserAdmin(AuditActivityMixin, UserAdmin):
    pass
