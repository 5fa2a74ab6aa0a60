"""Exceptions of django-audit-admin, under one base class."""


class AuditError(Exception):
    """Base class of every error this package raises on purpose."""


class ContextError(AuditError, ValueError):
    """Context metadata that cannot be stored, or a misuse of the context API."""


class TrackingError(AuditError):
    """A tracked model or event cannot be used the way it was asked for."""


class RevertError(AuditError):
    """A revert or restore that cannot be done; nothing was written."""


class RevertConflict(RevertError):
    """The object changed since the version the user looked at."""


class RevertMissingRelated(RevertError):
    """A row the version refers to no longer exists."""


class RevertUniqueClash(RevertError):
    """A unique value of the version is now taken by another row."""


class RevertValidationError(RevertError):
    """The version no longer passes the model's validation."""

    def __init__(self, message: str, errors: dict | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class RevertSchemaError(RevertError):
    """A field of the version can no longer be restored (the schema changed)."""


class NothingToRevert(RevertError):
    """The object already matches the version."""


# -- sealing (docs/integrity.md) -----------------------------------------------------------------


class SealError(AuditError):
    """Sealed history cannot be sealed, verified or read as asked; nothing was written."""


class SealKeyError(SealError):
    """No usable key to authenticate or check seal records."""


class HeadsError(SealError):
    """A heads file that cannot be read or does not hold heads."""


# -- partitioning (docs/scaling.md) --------------------------------------------------------------


class PartitionError(AuditError):
    """An event table that cannot be partitioned or maintained as asked; nothing was changed."""
