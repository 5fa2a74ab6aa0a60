"""``AuditContextMiddleware``: every write of a request carries who, from where and why."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from audit_app import conf
from audit_app.runtime import context, update_context

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def _header_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client address, trusting ``X-Forwarded-For`` only from trusted proxies."""
    networks = [ipaddress.ip_network(n, strict=False) for n in conf.trusted_proxies()]
    remote = _parse_ip(request.META.get("REMOTE_ADDR", ""))

    def trusted(addr: Any) -> bool:
        return addr is not None and any(addr in net for net in networks)

    if remote is None or not trusted(remote):
        return str(remote) if remote else None
    # Walk the chain from the nearest hop; the first untrusted address is the client.
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        addr = _parse_ip(hop)
        if addr is None:
            break
        if not trusted(addr):
            return str(addr)
    return str(remote)


def request_id(request: HttpRequest) -> str:
    """The upstream request id when it looks like one, else a fresh one."""
    value = request.META.get(_header_key(conf.request_id_header()), "")
    return value if _REQUEST_ID_RE.match(value) else uuid.uuid4().hex


def user_metadata(user: Any) -> dict[str, Any]:
    if user is None or not getattr(user, "is_authenticated", False):
        return {"user": None, "username": None}
    return {"user": user.pk, "username": user.get_username()}


def request_metadata(request: HttpRequest) -> dict[str, Any]:
    """The context a request's writes are recorded with."""
    return {
        **user_metadata(getattr(request, "user", None)),
        "url": request.get_full_path()[:2048],
        "method": request.method,
        "ip": client_ip(request),
        "request_id": request_id(request),
    }


def _track_late_user(request: HttpRequest) -> None:
    """Follow ``request.user = ...`` done later in the view, as DRF authentication does."""
    original = request.__class__

    class AuditedRequest(original):  # type: ignore[misc, valid-type]
        def __setattr__(self, name: str, value: Any) -> None:
            super().__setattr__(name, value)
            if name == "user":
                update_context(**user_metadata(value))

    AuditedRequest.__name__ = original.__name__
    AuditedRequest.__qualname__ = original.__qualname__
    request.__class__ = AuditedRequest


class AuditContextMiddleware:
    """Open an ``audit_app.context`` around each request; place after authentication."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def get_context(self, request: HttpRequest) -> dict[str, Any]:
        """Metadata for ``request``; override to add keys."""
        return request_metadata(request)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        _track_late_user(request)
        metadata = self.get_context(request)
        request.audit_request_id = metadata.get("request_id")
        with context(**metadata):
            return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        from asgiref.sync import sync_to_async

        _track_late_user(request)
        # Resolving request.user may hit the session store: keep it off the event loop.
        metadata = await sync_to_async(self.get_context)(request)
        request.audit_request_id = metadata.get("request_id")
        async with context(**metadata):
            return await self.get_response(request)
