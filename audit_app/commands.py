"""Run management commands inside ``audit_app.context(command=<name>)``.

Django has no hook around command execution, so ``BaseCommand.execute`` is wrapped
once at start-up. Servers and the test runner are left out: their requests and tests
open contexts of their own.
"""

from __future__ import annotations

import functools
from typing import Any

from audit_app import conf
from audit_app.runtime import context, current_context


def install() -> None:
    from django.core.management.base import BaseCommand

    original = BaseCommand.execute
    if getattr(original, "audit_wrapped", False):
        return

    @functools.wraps(original)
    def execute(self: BaseCommand, *args: Any, **options: Any) -> Any:
        name = self.__class__.__module__.rsplit(".", 1)[-1]
        if (
            not conf.command_context()
            or name in conf.command_context_exclude()
            or current_context() is not None
        ):
            return original(self, *args, **options)
        with context(command=name):
            return original(self, *args, **options)

    execute.audit_wrapped = True  # type: ignore[attr-defined]
    BaseCommand.execute = execute  # type: ignore[method-assign]
