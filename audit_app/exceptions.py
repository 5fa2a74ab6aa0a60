"""Exceptions of django-audit-admin, under one base class."""


class AuditError(Exception):
    """Base class of every error this package raises on purpose."""


class ContextError(AuditError, ValueError):
    """Context metadata that cannot be stored, or a misuse of the context API."""


class TrackingError(AuditError):
    """A tracked model or event cannot be used the way it was asked for."""
