"""Request context for events: ``audit_app.context`` and its hand-over to the triggers.

The current context lives in a ``ContextVar`` (threads and asyncio tasks each see
their own). Its metadata is serialised once, when the context is entered, and handed
to PostgreSQL only with statements that may write: a ``set_config(..., true)`` is
prepended to the statement itself, so it costs no extra round trip and lasts only
for the current transaction, which keeps it safe under transaction pooling. The
values travel as parameters of that prefix: the statement's text stays the same from
one request to the next, so the driver's cache of parsed statements keeps working.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import transaction
from psycopg.pq import TransactionStatus

from audit_app import conf, sql
from audit_app.exceptions import ContextError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Frame:
    metadata: dict[str, Any]
    payload: str  # the metadata as JSON text
    key: str  # the frame's context row key (see _frame_key), as text


_current: ContextVar[_Frame | None] = ContextVar("audit_app_context", default=None)
# The reason given to disable_tracking().
_disabled: ContextVar[str | None] = ContextVar("audit_app_disabled", default=None)


def _sanitise(value: Any, path: str) -> Any:
    """Make ``value`` storable in jsonb: NUL becomes U+FFFD, NaN and infinities raise."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and not math.isfinite(value):
        raise ContextError(
            f"Context value {path} is {value!r}; PostgreSQL's jsonb cannot store NaN or "
            "infinity. Pass a string or None instead."
        )
    if isinstance(value, dict):
        return {_sanitise(str(k), path): _sanitise(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitise(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _frame(metadata: dict[str, Any]) -> _Frame:
    clean = {str(k): _sanitise(v, str(k)) for k, v in metadata.items()}
    try:
        payload = json.dumps(
            clean, cls=conf.json_encoder(), allow_nan=False, separators=(",", ":"), sort_keys=True
        )
    except (TypeError, ValueError) as exc:
        raise ContextError(
            f"Context metadata {sorted(clean)} cannot be stored as JSON: {exc}"
        ) from exc
    # The encoder may have produced NaN-free text with NUL escapes from custom objects.
    payload = payload.replace("\\u0000", "\\ufffd")
    return _Frame(clean, payload, str(_frame_key()))


def _frame_key() -> int:
    """A key for the frame's context row, shared by every transaction in the frame.

    Time-ordered (milliseconds, then 20 random bits), so the primary key index grows
    at its end, and at least ``sql.CONTEXT_KEY_MIN``, above any sequence number. Two
    frames that draw the same key (same millisecond, same random bits) still get
    their own rows: the context function shares a row only with identical metadata.
    """
    return sql.CONTEXT_KEY_MIN | (time.time_ns() // 1_000_000) << 20 | secrets.randbits(20)


class context:
    """Attach metadata to every event written inside the block.

    Usable as ``with``, ``async with`` and as a decorator. Nested contexts merge their
    keys into the outer ones for the inner block only.
    """

    def __init__(self, **metadata: Any) -> None:
        self.metadata = metadata
        self._tokens: list[Any] = []

    def __enter__(self) -> context:
        parent = _current.get()
        merged = {**(parent.metadata if parent else {}), **self.metadata}
        self._tokens.append(_current.set(_frame(merged)))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _current.reset(self._tokens.pop())

    async def __aenter__(self) -> context:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with context(**self.metadata):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with context(**self.metadata):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def current_context() -> dict[str, Any] | None:
    """The metadata events would be written with right now, or None outside a context."""
    frame = _current.get()
    return dict(frame.metadata) if frame else None


def update_context(**metadata: Any) -> bool:
    """Merge ``metadata`` into the innermost open context; False when none is open.

    Events already written keep the context they were written with.
    """
    frame = _current.get()
    if frame is None:
        return False
    _current.set(_frame({**frame.metadata, **metadata}))
    return True


@contextmanager
def disable_tracking(reason: str) -> Iterator[None]:
    """Write no events inside the block; the triggers record each bypassed statement.

    Every statement that changes tracked rows meanwhile leaves one row in
    ``audit_app.Bypass`` (table, operation, row count, reason and context) instead of
    its events, so the gap in history is itself on record.
    """
    if not reason or not reason.strip():
        raise ContextError("disable_tracking() needs a reason; it is recorded with each statement.")
    token = _disabled.set(reason.replace("\x00", "\ufffd"))
    try:
        yield
    finally:
        _disabled.reset(token)


# Statements that can change rows. Plain SELECTs, DDL and transaction control are
# left alone (a function called from a SELECT that writes is the one blind spot,
# documented in docs/context.md). Leading blanks, comments and parentheses are skipped.
_LEAD = r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/|\()*"
_WRITE_RE = re.compile(_LEAD + r"(?:INSERT|UPDATE|DELETE|MERGE|COPY|CALL|DO)\b", re.I | re.S)
# A WITH query writes only through a data-modifying CTE, which names one of these. A
# read that merely mentions a word (say, a label 'delete') gets a harmless prefix.
_CTE_WRITE_RE = re.compile(_LEAD + r"WITH\b.*\b(?:INSERT|UPDATE|DELETE|MERGE)\b", re.I | re.S)
# The hand-over: the settings the triggers read, as parameters (positional, or named
# when the statement's own parameters are a mapping).
_SETTINGS = (sql.CONTEXT_GUC, sql.CONTEXT_KEY_GUC, sql.DISABLED_GUC)
_NAMES = ("audit_app_context", "audit_app_context_key", "audit_app_disabled")
_PREFIX = sql.set_config_sql([(name, "%s") for name in _SETTINGS])
_NAMED_PREFIX = sql.set_config_sql(
    [(name, f"%({key})s") for name, key in zip(_SETTINGS, _NAMES, strict=True)]
)


def _in_transaction(connection: Any) -> bool:
    """Whether the next statement runs in a transaction that outlives it."""
    if connection.in_atomic_block or not connection.get_autocommit():
        return True
    # A transaction opened by hand (a raw BEGIN) is invisible to Django.
    raw = connection.connection
    return raw is not None and raw.info.transaction_status != TransactionStatus.IDLE


def settings_values(connection: Any) -> tuple[str, str, str] | None:
    """The values of the settings a write on ``connection`` must hand over first
    (context, context key, disabled reason; ``_PREFIX`` sets them), or None.

    Settings made earlier in the same transaction stay visible until it ends, so once
    they were set inside a transaction, later writes there must reset them.
    """
    frame = _current.get()
    disabled = _disabled.get()
    in_transaction = _in_transaction(connection)
    stale = in_transaction and getattr(connection, "_audit_settings_dirty", False)
    if frame is None and disabled is None and not stale:
        connection._audit_settings_dirty = False
        return None
    connection._audit_settings_dirty = in_transaction
    if frame is None:
        return "", "", disabled or ""
    return frame.payload, frame.key, disabled or ""


def inject_context(execute: Callable, sql_text: Any, params: Any, many: bool, ctx: dict) -> Any:
    """Django execute wrapper that hands the current context to the triggers."""
    if not isinstance(sql_text, str) or not (
        _WRITE_RE.match(sql_text) or _CTE_WRITE_RE.match(sql_text)
    ):
        return execute(sql_text, params, many, ctx)
    values = settings_values(ctx["connection"])
    if values is None:
        return execute(sql_text, params, many, ctx)
    if many:
        return _execute_many(execute, values, sql_text, params, ctx)
    if isinstance(params, Mapping):
        prefix, params = _NAMED_PREFIX, {**params, **dict(zip(_NAMES, values, strict=True))}
    else:
        if params is None:  # the statement's own "%" are not placeholders
            sql_text = sql_text.replace("%", "%%")
        prefix, params = _PREFIX, (*values, *params) if params else values
    result = execute(f"{prefix}; {sql_text}", params, many, ctx)
    # The cursor now points at the set_config result; move it to the statement's own.
    ctx["cursor"].nextset()
    return result


def _execute_many(execute: Callable, values: tuple, sql_text: str, params: Any, ctx: dict) -> Any:
    # executemany cannot carry a second statement: set the context first, in the same
    # transaction as the statements (atomic() makes one in autocommit mode).
    with transaction.atomic(using=ctx["connection"].alias):
        ctx["cursor"].cursor.execute(_PREFIX, values)
        return execute(sql_text, params, True, ctx)


class _CopyMixin:
    """``cursor.copy()`` that carries the context, like every other write.

    psycopg's ``copy()`` (the only way to run ``COPY ... FROM STDIN``) does not go
    through Django's execute wrappers, so the settings are sent first, in the same
    transaction (atomic() makes one in autocommit mode).
    """

    @contextmanager
    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:
        with transaction.atomic(using=self.db.alias):
            values = settings_values(self.db)
            if values is not None:
                self.cursor.execute(_PREFIX, values)
            with self.cursor.copy(statement, params, **kwargs) as copy:
                yield copy


_cursor_classes: dict[type, type] = {}


def _with_copy(wrapper: Any) -> Any:
    base = type(wrapper)
    if base not in _cursor_classes:
        _cursor_classes[base] = type(base.__name__, (_CopyMixin, base), {})
    wrapper.__class__ = _cursor_classes[base]
    return wrapper


def install(connection: Any) -> None:
    """Add the context hand-over to a database connection (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        return
    if not getattr(connection, "_audit_cursors", False):
        make_cursor, make_debug_cursor = connection.make_cursor, connection.make_debug_cursor
        connection.make_cursor = lambda cursor: _with_copy(make_cursor(cursor))
        connection.make_debug_cursor = lambda cursor: _with_copy(make_debug_cursor(cursor))
        connection._audit_cursors = True
    if inject_context not in connection.execute_wrappers:
        # First in the list: Django's execute_wrapper() context manager pops the last
        # wrapper on exit, which must never be ours.
        connection.execute_wrappers.insert(0, inject_context)
