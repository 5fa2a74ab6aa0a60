"""The test URLs plus a writing view under any path (for paths holding ``%00``)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from tests.trackapp.models import Widget
from tests.urls import urlpatterns as test_urls


@csrf_exempt
def write_anywhere(request: HttpRequest, rest: str) -> HttpResponse:
    """Write one row, whatever the rest of the path holds."""
    Widget.objects.create(name="written")
    return HttpResponse("ok")


urlpatterns = [
    path("test/write-anywhere/<path:rest>", write_anywhere, name="test-write-anywhere"),
    *test_urls,
]
