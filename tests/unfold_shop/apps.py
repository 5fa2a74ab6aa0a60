from django.apps import AppConfig


class UnfoldShopConfig(AppConfig):
    """The example shop's admins on django-unfold's ModelAdmin (tests/settings_unfold.py)."""

    name = "tests.unfold_shop"
    label = "unfold_shop"
