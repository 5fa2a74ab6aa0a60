"""Models of the tracking core: request context, capture bypass records, event base."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.json import KeyTextTransform

from audit_app.triggers import AppendOnly


class Context(models.Model):
    """Who, from where and why: one immutable row per distinct context per transaction.

    Written by the database function ``audit_app_context_id()`` from the metadata that
    ``audit_app.context`` hands over; never updated, so every event keeps the context
    as it was when the event was written.
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    metadata = models.JSONField(encoder=DjangoJSONEncoder)

    class Meta:
        db_table = "audit_app_context"
        indexes: ClassVar = [
            models.Index(KeyTextTransform("request_id", "metadata"), name="audit_ctx_request_id"),
        ]
        # Rows are never rewritten. TRUNCATE stays allowed: it needs the TRUNCATE
        # privilege, which the application role of docs/security.md lacks, and test
        # runners flush every table with it.
        triggers: ClassVar = [AppendOnly("audit_immutable", truncate=False)]

    def __str__(self) -> str:
        return f"context {self.pk}"


class Bypass(models.Model):
    """A statement that changed tracked rows while capture was disabled, and why."""

    created_at = models.DateTimeField()
    table_name = models.TextField()
    operation = models.TextField()
    row_count = models.BigIntegerField()
    reason = models.TextField()
    context = models.ForeignKey(
        Context, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )

    class Meta:
        db_table = "audit_app_bypass"
        triggers: ClassVar = [AppendOnly("audit_immutable", truncate=False)]

    def __str__(self) -> str:
        return f"{self.operation} of {self.row_count} row(s) on {self.table_name} untracked"


class BaseEvent(models.Model):
    """Abstract base of every generated event model."""

    audit_id = models.BigAutoField(primary_key=True)
    audit_created_at = models.DateTimeField()
    audit_label = models.CharField(max_length=32)
    # Indexed by a named index in each generated Meta, so no FK index here.
    audit_context = models.ForeignKey(
        Context,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )

    # Set on each generated class by audit_app.tracking.
    audit_tracked_model: ClassVar[type[models.Model]]
    audit_spec: ClassVar[Any]

    class Meta:
        abstract = True
        ordering = ("audit_id",)

    def __str__(self) -> str:
        return f"{self.audit_label} of {self.audit_tracked_model._meta.label} {self.audit_obj_id}"
