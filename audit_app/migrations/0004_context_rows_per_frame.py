import audit_app.sql
from django.db import migrations


class Migration(migrations.Migration):
    """Context function version 2: one context row per context frame."""

    dependencies = [("audit_app", "0003_context_indexes")]

    operations = [
        migrations.RunSQL(
            audit_app.sql.CONTEXT_FUNCTION_SQL_V2,
            reverse_sql=audit_app.sql.CONTEXT_FUNCTION_SQL_V1,
        ),
    ]
