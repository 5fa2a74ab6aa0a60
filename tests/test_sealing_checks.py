"""System checks of sealing: each id fires in its situation (ids: docs/settings.md)."""

from __future__ import annotations

import sys

import pytest
from django.utils import timezone

import audit_app.checks as audit_checks
from audit_app.models import Seal
from tests.test_sealing_operations import ed25519_files


def ids(messages):
    return [m.id for m in messages]


def test_no_seal_settings_no_messages():
    assert audit_checks.check_seal_keys() == []


def test_w011_a_short_hmac_key(settings):
    settings.AUDIT_SEAL_KEY = "short"
    (warning,) = audit_checks.check_seal_keys()
    assert warning.id == "audit_app.W011" and "5 bytes" in warning.msg
    assert "secrets.token_hex(32)" in warning.hint
    settings.AUDIT_SEAL_KEY = ["x" * 32, "old"]  # a retired key that is short counts too
    assert ids(audit_checks.check_seal_keys()) == ["audit_app.W011"]
    settings.AUDIT_SEAL_KEY = b"k" * 32
    assert audit_checks.check_seal_keys() == []


def test_e010_key_files_that_cannot_be_used(settings, tmp_path, monkeypatch):
    settings.AUDIT_SEAL_PRIVATE_KEY_FILE = str(tmp_path / "missing.pem")
    (error,) = audit_checks.check_seal_keys()
    assert error.id == "audit_app.E010" and "cannot be read" in error.msg
    not_pem = tmp_path / "key.txt"
    not_pem.write_text("hello")
    settings.AUDIT_SEAL_PRIVATE_KEY_FILE = str(not_pem)
    settings.AUDIT_SEAL_PUBLIC_KEY_FILE = str(not_pem)
    errors = audit_checks.check_seal_keys()
    assert ids(errors) == ["audit_app.E010", "audit_app.E010"]
    assert "openssl genpkey -algorithm ed25519" in errors[0].msg
    assert "openssl pkey" in errors[1].msg
    private, public = ed25519_files(tmp_path)
    settings.AUDIT_SEAL_PRIVATE_KEY_FILE, settings.AUDIT_SEAL_PUBLIC_KEY_FILE = private, public
    assert audit_checks.check_seal_keys() == []
    import cryptography.hazmat.primitives.asymmetric as asymmetric

    monkeypatch.delattr(asymmetric, "ed25519")
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric.ed25519", None)
    errors = audit_checks.check_seal_keys()
    assert ids(errors) == ["audit_app.E010", "audit_app.E010"]
    assert "django-audit-admin[signing]" in errors[0].msg


def test_e010_a_key_that_is_not_ed25519(settings, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "ec.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    settings.AUDIT_SEAL_PRIVATE_KEY_FILE = str(other)
    (error,) = audit_checks.check_seal_keys()
    assert error.id == "audit_app.E010" and "is not an Ed25519 key" in error.msg


@pytest.mark.django_db
def test_w010_sealed_history_without_a_key(settings):
    assert audit_checks.check_sealed_history_has_a_key(databases=["default"]) == []
    Seal.objects.create(
        seq=1, kind="seal", created_at=timezone.now(), table_name="t", first_id=1, last_id=1,
        row_count=1, details={}, root=b"", prev_hash=b"", hash=b"", method="hmac-sha256",
        key_id="x", authenticator=b"",
    )  # fmt: skip
    (warning,) = audit_checks.check_sealed_history_has_a_key(databases=["default"])
    assert warning.id == "audit_app.W010" and "holds 1 seal record," in warning.msg
    assert "AUDIT_SEAL_KEY" in warning.hint
    assert audit_checks.check_sealed_history_has_a_key(databases=None) == []
    settings.AUDIT_SEAL_KEY = "k" * 32
    assert audit_checks.check_sealed_history_has_a_key(databases=["default"]) == []
