"""django-audit-admin: history, diff, revert and export in the Django admin."""
