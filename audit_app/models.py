"""Models of the tracking core: request context, capture bypass records, event base."""

from __future__ import annotations

from typing import Any, ClassVar

from django.apps import apps
from django.conf import settings
from django.contrib.postgres.indexes import HashIndex
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.json import KeyTextTransform

from audit_app.cascade import revert
from audit_app.changesets import changeset_of
from audit_app.diff import action_of
from audit_app.event_sql import AGGREGATE_TABLE
from audit_app.query import AuditEventManager
from audit_app.triggers import AppendOnly


class Context(models.Model):
    """Who, from where and why: one immutable row per distinct context per transaction.

    Written by the database function ``audit_app_context_id()`` from the metadata that
    ``audit_app.context`` hands over; never updated, so every event keeps the context
    as it was when the event was written.
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField()
    # Not indexed here: every event row carries the user too (``audit_user_id``),
    # indexed per event table, which is what "events by user" reads.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    metadata = models.JSONField(encoder=DjangoJSONEncoder)

    class Meta:
        db_table = "audit_app_context"
        indexes: ClassVar = [
            # Request ids are only ever matched whole: a hash index is half the size
            # of a btree over 32-character random keys.
            HashIndex(KeyTextTransform("request_id", "metadata"), name="audit_ctx_request_id"),
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


class ColumnHistory(models.Model):
    """A column of an event table whose field came or went after events were written.

    Written by the migration operations of ``audit_app.operations`` (never by hand),
    read by ``audit_app.column_history``: a retired column keeps the values of a field
    the tracked model lost or retyped; a column added later says which events could
    not have recorded it.
    """

    event_table = models.TextField()
    column_name = models.TextField()
    field_name = models.TextField()  # the name its values show under
    verbose_name = models.TextField()
    description = models.JSONField()  # the field's class and options, to show values
    masked = models.BooleanField(default=False)
    # Events with an id up to this one did not record the field (None: all did).
    recorded_after = models.BigIntegerField(null=True)
    # Events with a higher id do not record it in this column (None: still live).
    retired_after = models.BigIntegerField(null=True)
    # Why it was retired: "removed" (the field was removed or retyped) or "unapplied"
    # (the migration that added it was unapplied); empty while live.
    retired_by = models.TextField(blank=True, default="")
    changed_at = models.DateTimeField()

    class Meta:
        db_table = "audit_app_columnhistory"
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["event_table", "column_name"], name="audit_columnhistory_unique"
            )
        ]
        verbose_name_plural = "column histories"

    def __str__(self) -> str:
        state = "retired" if self.retired_after is not None else "added"
        return f"{self.event_table}.{self.column_name} ({self.field_name}, {state})"


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
    # The acting user, copied from the context by the trigger; indexed with the time
    # by a named index in each generated Meta.
    audit_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
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


class AuditEvent(models.Model):
    """One stream over every event table; read-only.

    ``data`` holds the tracked values keyed by field name, ``diff`` maps each field that
    changed since the object's previous event to ``[old, new]`` (None for its first
    event). Masked fields show ``audit_app.event_sql.MASKED`` instead of values.
    """

    id = models.TextField(primary_key=True)
    event_model = models.TextField()
    event_id = models.BigIntegerField()
    obj_model = models.TextField()
    obj_id = models.TextField()
    label = models.TextField()
    created_at = models.DateTimeField()
    context = models.ForeignKey(
        Context, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    # The acting user (None for events without one, or once the user is deleted: the
    # username snapshot stays in ``metadata``).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    data = models.JSONField()
    # Change markers of masked fields, for diffs only: never values, never displayed.
    masked_markers = models.JSONField(null=True)

    objects = AuditEventManager()

    # Filled for a page of events by audit_app.diff.attach_diffs.
    diff: dict[str, list[Any]] | None = None

    class Meta:
        managed = False
        db_table = AGGREGATE_TABLE
        ordering = ("-created_at", "-event_id")
        default_permissions = ("view",)
        permissions = (
            ("revert_auditevent", "Can revert objects to an earlier version"),
            ("export_auditevent", "Can export audit events"),
            ("verify_auditevent", "Can see the integrity of audit history"),
        )
        verbose_name = "audit event"

    def __str__(self) -> str:
        return f"{self.label} of {self.obj_model} {self.obj_id}"

    @property
    def raw_data(self) -> dict[str, Any]:
        """``data`` with masked fields as change markers, to compare versions."""
        return {**self.data, **(self.masked_markers or {})}

    @property
    def metadata(self) -> dict[str, Any]:
        return self.context.metadata if self.context_id and self.context else {}

    @property
    def username(self) -> str | None:
        """The acting user's name when the event was written (kept after deletion)."""
        return self.metadata.get("username")

    @property
    def action(self) -> str:
        """What happened: created, changed, deleted, reverted, restored, snapshot or a label."""
        return action_of(self.label, self.metadata)

    @property
    def tracked_model(self) -> type[models.Model]:
        return apps.get_model(self.obj_model)

    @property
    def source_event_model(self) -> type[models.Model]:
        return apps.get_model(self.event_model)

    def changeset(self, follow: Any = None) -> Any:
        """The change set of this event: the events of its object and of the object's
        followed rows (``follow``, default: the declared ones) written in its context."""
        return changeset_of(self, follow)

    def revert(
        self,
        *,
        fields: Any = None,
        user: Any = None,
        reason: str = "",
        expected_event_id: Any = None,
        follow: Any = None,
    ) -> models.Model:
        """Restore the object to this version; see ``audit_app.revert``."""
        return revert(
            self,
            follow=follow,
            fields=fields,
            user=user,
            reason=reason,
            expected_event_id=expected_event_id,
        )


# -- sealing (docs/integrity.md) -------------------------------------------------------------


class Seal(models.Model):
    """One record of the seal chain: a sealed batch of one event table, or a prune.

    Each record holds the previous record's hash and is authenticated with a key the
    database never holds (``audit_app.seal_keys``); ``audit_app.sealing`` writes them,
    ``audit_app.verification`` checks them.
    """

    SEAL = "seal"
    PRUNE = "prune"

    seq = models.BigIntegerField(primary_key=True)
    kind = models.TextField()
    created_at = models.DateTimeField()
    table_name = models.TextField()
    # Seal: the new ids (previous high-water mark, this one]; prune: the ids deleted.
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    row_count = models.BigIntegerField()
    # Seal: keys, context keys, gaps, late rows, open gaps; prune: id runs, reason.
    details = models.JSONField()
    root = models.BinaryField()
    prev_hash = models.BinaryField()
    hash = models.BinaryField()
    method = models.TextField()
    key_id = models.TextField()
    authenticator = models.BinaryField()

    class Meta:
        db_table = "audit_app_seal"
        ordering = ("seq",)
        indexes: ClassVar = [
            models.Index(fields=["table_name", "kind", "seq"], name="audit_seal_table_kind")
        ]
        triggers: ClassVar = [AppendOnly("audit_immutable", truncate=False)]

    def __str__(self) -> str:
        return f"{self.kind} {self.seq} of {self.table_name}"


class SealChunk(models.Model):
    """Up to 4,096 rows of a sealed batch: their ids and each row's digest and fingerprints."""

    id = models.BigAutoField(primary_key=True)
    seal = models.ForeignKey(
        Seal, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    position = models.IntegerField()
    table_name = models.TextField()
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    row_count = models.IntegerField()
    ids = models.JSONField()
    rows = models.BinaryField()

    class Meta:
        db_table = "audit_app_seal_chunk"
        indexes: ClassVar = [
            models.Index(fields=["seal", "position"], name="audit_seal_chunk_order")
        ]
        triggers: ClassVar = [AppendOnly("audit_immutable", truncate=False)]

    def __str__(self) -> str:
        return f"chunk {self.position} of seal {self.seal_id}"


class IntegrityRun(models.Model):
    """A run of ``audit seal`` or ``audit verify``: when, how many events, the outcome."""

    SEAL = "seal"
    VERIFY = "verify"

    kind = models.TextField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    ok = models.BooleanField()
    findings = models.IntegerField(default=0)
    events = models.BigIntegerField(default=0)
    summary = models.JSONField(default=list)

    class Meta:
        db_table = "audit_app_integrity_run"
        indexes: ClassVar = [
            models.Index(fields=["kind", "-started_at"], name="audit_integrity_run_kind")
        ]
        triggers: ClassVar = [AppendOnly("audit_immutable", truncate=False)]

    def __str__(self) -> str:
        return f"{self.kind} at {self.started_at:%Y-%m-%d %H:%M}: {'ok' if self.ok else 'failed'}"
