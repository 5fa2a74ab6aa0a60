"""A test-only Content-Security-Policy middleware.

It sends ``settings.TEST_CONTENT_SECURITY_POLICY`` as the ``Content-Security-Policy``
header when that setting is set (read per request, so a test can switch it on for the
live server with pytest-django's ``settings`` fixture), and nothing otherwise. Listed
first in ``tests/settings.py``; ``tests/e2e/test_csp.py`` uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase


class ContentSecurityPolicyMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.add_policy(self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        return self.add_policy(await self.get_response(request))

    @staticmethod
    def add_policy(response: HttpResponseBase) -> HttpResponseBase:
        policy = getattr(settings, "TEST_CONTENT_SECURITY_POLICY", None)
        if policy:
            response.headers.setdefault("Content-Security-Policy", policy)
        return response
