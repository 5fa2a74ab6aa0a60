"""The example project's URLs plus views that exercise the context middleware."""

from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as project_urls
from tests.trackapp.models import Widget


@csrf_exempt
def write(request):
    """Write two rows, changing the context in between, like a view that logs in."""
    Widget.objects.create(name=request.GET.get("name", "w"))
    if "login_as" in request.GET:
        # What token authentication (DRF) does inside the view.
        request.user = get_user_model().objects.get(username=request.GET["login_as"])
        Widget.objects.create(name="after login")
    return HttpResponse("ok")


async def write_async(request):
    from asgiref.sync import sync_to_async

    await sync_to_async(Widget.objects.create)(name="async")
    return HttpResponse("ok")


urlpatterns = [
    path("test/write/", write, name="test-write"),
    path("test/write-async/", write_async, name="test-write-async"),
    *project_urls,
]
