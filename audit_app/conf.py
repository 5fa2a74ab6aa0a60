"""Settings of django-audit-admin, each read at call time so ``override_settings`` works.

Every setting is named ``AUDIT_<NAME>`` and documented in ``docs/settings.md``.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings

DEFAULT_MASKED_FIELDS = (
    "*password*",
    "*passwd*",
    "*token*",
    "*secret*",
    "*api_key*",
    "*apikey*",
    "*private_key*",
    "*access_key*",
)


def _get(name: str, default: Any) -> Any:
    return getattr(settings, f"AUDIT_{name}", default)


def level() -> str:
    """Default trigger level, ``"STATEMENT"`` or ``"ROW"`` (``AUDIT_LEVEL``)."""
    return str(_get("LEVEL", "STATEMENT")).upper()


def append_only() -> bool:
    """Whether event tables refuse UPDATE, DELETE and TRUNCATE (``AUDIT_APPEND_ONLY``)."""
    return bool(_get("APPEND_ONLY", True))


def partition() -> str | None:
    """Default partition interval of event tables: "day", "week", "month" or None
    (``AUDIT_PARTITION``)."""
    value = _get("PARTITION", None)
    return str(value) if value else None


def masked_fields() -> tuple[str, ...]:
    """Case-insensitive name patterns of fields stored as change markers only."""
    return tuple(_get("MASKED_FIELDS", DEFAULT_MASKED_FIELDS))


def constrain_obj() -> bool:
    """Whether the event's object reference is a real foreign key that cascades."""
    return bool(_get("CONSTRAIN_OBJ", False))


def trusted_proxies() -> tuple[str, ...]:
    """Addresses or networks whose ``X-Forwarded-For`` header is believed."""
    return tuple(_get("TRUSTED_PROXIES", ()))


def request_id_header() -> str:
    """HTTP header carrying an upstream request id (``AUDIT_REQUEST_ID_HEADER``)."""
    return str(_get("REQUEST_ID_HEADER", "X-Request-ID"))


def json_encoder() -> Any:
    """JSON encoder class (or dotted path) used to serialise context metadata."""
    encoder = _get("JSON_ENCODER", "django.core.serializers.json.DjangoJSONEncoder")
    return _import(encoder) if isinstance(encoder, str) else encoder


@functools.cache
def _import(path: str) -> Any:
    # Every context entered resolves the encoder: import each path once.
    from django.utils.module_loading import import_string

    return import_string(path)


def exact_count_limit() -> int:
    """Counts up to this many rows are exact, larger ones estimated (``AUDIT_EXACT_COUNT_LIMIT``).

    A count reads at most this many rows plus one; 0 turns exact counts off.
    """
    return max(int(_get("EXACT_COUNT_LIMIT", 10_000)), 0)


def command_context() -> bool:
    """Whether management commands run inside ``audit_app.context(command=name)``."""
    return bool(_get("COMMAND_CONTEXT", True))


def command_context_exclude() -> tuple[str, ...]:
    """Commands never wrapped in a context: servers get one context per request."""
    return tuple(_get("COMMAND_CONTEXT_EXCLUDE", ("runserver", "testserver", "test", "shell")))


# -- sealing (docs/integrity.md) -----------------------------------------------------------------


def seal_keys() -> list[bytes]:
    """HMAC keys of sealed history (``AUDIT_SEAL_KEY``): the first seals, every one verifies.

    A str or bytes, or a list of them to rotate keys (the new key first). Never stored
    in the database.
    """
    value = _get("SEAL_KEY", None)
    if value is None:
        return []
    values = [value] if isinstance(value, (str, bytes)) else list(value)
    return [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values if v]


def seal_private_key_file() -> str | None:
    """PEM file of an Ed25519 private key that signs seal records instead of HMAC
    (``AUDIT_SEAL_PRIVATE_KEY_FILE``)."""
    value = _get("SEAL_PRIVATE_KEY_FILE", None)
    return str(value) if value else None


def seal_public_key_file() -> str | None:
    """PEM file of the Ed25519 public key that checks signed seal records
    (``AUDIT_SEAL_PUBLIC_KEY_FILE``); derived from the private key when unset."""
    value = _get("SEAL_PUBLIC_KEY_FILE", None)
    return str(value) if value else None


# -- replicas (docs/scaling.md#replicas) ---------------------------------------------------------


def read_database() -> str:
    """Alias of ``DATABASES`` that history is read from by default (``AUDIT_READ_DATABASE``).

    The event browser, exports and ``AuditEvent`` queries without ``.using()`` read
    there; whatever decides a write, and an object's own history, reads the primary.
    """
    return str(_get("READ_DATABASE", "default"))
