"""A small shop whose every change is recorded by django-audit-admin."""

from decimal import Decimal

from django.contrib.auth.models import User
from django.core.validators import MinValueValidator
from django.db import models

import audit_app


@audit_app.track()
class Customer(models.Model):
    name = models.CharField(max_length=120)
    email = models.EmailField(unique=True)
    phone = models.CharField(max_length=40, blank=True)
    # Masked by default (name matches *token*): history records only that it changed.
    api_token = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


@audit_app.track()
class Tag(models.Model):
    name = models.SlugField(max_length=40, unique=True)

    def __str__(self) -> str:
        return self.name


# A product's history includes its tag links (the ProductTag table below).
@audit_app.track(follow=["tags"])
class Product(models.Model):
    class Category(models.TextChoices):
        BOOKS = "books", "Books"
        GAMES = "games", "Games"
        TOOLS = "tools", "Tools"
        MUSIC = "music", "Music"

    sku = models.CharField("SKU", max_length=32, unique=True)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.BOOKS)
    price = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    attributes = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="products")

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


@audit_app.track()
class DigitalProduct(Product):
    download_url = models.URLField()
    file_size_mb = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} (digital)"


@audit_app.track()
class ProductTag(Product.tags.through):
    """Tag assignments (the auto-created many-to-many table), tracked as add/remove."""

    class Meta:
        proxy = True
        verbose_name = "product tag"


# An order's history includes its items, as the admin edits them inline.
@audit_app.track(follow=["items"], partition="month")
class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        CANCELLED = "cancelled", "Cancelled"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    notes = models.TextField(blank=True)
    placed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-placed_at",)

    def __str__(self) -> str:
        return f"Order #{self.pk}"


@audit_app.track()
class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product.name}"


@audit_app.track(exclude=["last_login"])
class StaffUser(User):
    """Users of the shop, tracked through a proxy of django.contrib.auth's User.

    ``last_login`` changes on every login and is left out; the password hash is
    masked by default.
    """

    class Meta:
        proxy = True
        verbose_name = "user"
