from django.apps import AppConfig


class TrackAppConfig(AppConfig):
    name = "tests.trackapp"
    label = "trackapp"
    default_auto_field = "django.db.models.BigAutoField"
