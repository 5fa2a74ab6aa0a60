"""Register the global event browser on the default admin site (autodiscovered).

Another site registers it the same way: ``site.register(AuditEvent, AuditEventAdmin)``;
``admin.site.unregister(AuditEvent)`` removes it.
"""

from django.contrib import admin

from audit_admin.browser import AuditEventAdmin
from audit_app.models import AuditEvent

admin.site.register(AuditEvent, AuditEventAdmin)
