"""Benchmarks of django-audit-admin (never part of ``make test``)."""
