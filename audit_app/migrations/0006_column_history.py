from django.db import migrations, models


class Migration(migrations.Migration):
    """Where the history of removed, retyped and added fields is kept."""

    dependencies = [("audit_app", "0005_seals")]

    operations = [
        migrations.CreateModel(
            name="ColumnHistory",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("event_table", models.TextField()),
                ("column_name", models.TextField()),
                ("field_name", models.TextField()),
                ("verbose_name", models.TextField()),
                ("description", models.JSONField()),
                ("masked", models.BooleanField(default=False)),
                ("recorded_after", models.BigIntegerField(null=True)),
                ("retired_after", models.BigIntegerField(null=True)),
                ("retired_by", models.TextField(blank=True, default="")),
                ("changed_at", models.DateTimeField()),
            ],
            options={
                "db_table": "audit_app_columnhistory",
                "verbose_name_plural": "column histories",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("event_table", "column_name"), name="audit_columnhistory_unique"
                    )
                ],
            },
        ),
    ]
