"""Keys that authenticate seal records: HMAC-SHA256 or Ed25519, never in the database.

``signer()`` is the key that seals (an Ed25519 private key file when one is set, else
the first ``AUDIT_SEAL_KEY``); ``keyring()`` holds every key that may check a record
(all HMAC keys, and the Ed25519 public key from its file or from the private key).
Each key has a short public id, stored with the records it authenticated, so that a
verifier can tell "another key" from "an edited record".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_app import conf
from audit_app.exceptions import SealKeyError

HMAC = "hmac-sha256"
ED25519 = "ed25519"
#: Shorter HMAC keys draw a system-check warning (audit_app.W011).
MIN_KEY_BYTES = 32

_NO_KEY = (
    "No seal key is configured: set AUDIT_SEAL_KEY to a long random secret kept out of "
    "the database (for instance from the environment: python -c 'import secrets; "
    "print(secrets.token_hex(32))'), or AUDIT_SEAL_PRIVATE_KEY_FILE to an Ed25519 key."
)


def message(record_hash: bytes) -> bytes:
    """What an authenticator is computed over: a record's hash, with a purpose prefix."""
    return b"audit-seal-auth\n" + record_hash


def hmac_key_id(key: bytes) -> str:
    """A key's public id: it names the key without revealing it."""
    return hashlib.sha256(b"audit-seal-key-id\n" + key).hexdigest()[:16]


def ed25519_key_id(public_bytes: bytes) -> str:
    """A public key's id."""
    return hashlib.sha256(b"audit-seal-key-id\n" + public_bytes).hexdigest()[:16]


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise SealKeyError(
            "An Ed25519 seal key file is configured but the cryptography package is not "
            "installed: pip install 'django-audit-admin[signing]', or use AUDIT_SEAL_KEY."
        ) from exc
    return ed25519


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SealKeyError(
            f"{setting} = {path!r} cannot be read ({exc.strerror or exc}); point it at a "
            "readable PEM file."
        ) from exc


def load_private_key(path: str) -> Any:
    """The Ed25519 private key in the PEM file ``path``, or SealKeyError saying why not."""
    ed25519 = _crypto()
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(_read(path, "AUDIT_SEAL_PRIVATE_KEY_FILE"), password=None)
    except (ValueError, TypeError) as exc:
        raise SealKeyError(
            f"AUDIT_SEAL_PRIVATE_KEY_FILE = {path!r} holds no unencrypted PEM private key "
            f"({exc}); create one with: openssl genpkey -algorithm ed25519 -out {path}"
        ) from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SealKeyError(
            f"AUDIT_SEAL_PRIVATE_KEY_FILE = {path!r} is not an Ed25519 key; create one with: "
            f"openssl genpkey -algorithm ed25519 -out {path}"
        )
    return key


def load_public_key(path: str) -> Any:
    """The Ed25519 public key in the PEM file ``path``, or SealKeyError saying why not."""
    ed25519 = _crypto()
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(_read(path, "AUDIT_SEAL_PUBLIC_KEY_FILE"))
    except (ValueError, TypeError) as exc:
        raise SealKeyError(
            f"AUDIT_SEAL_PUBLIC_KEY_FILE = {path!r} holds no PEM public key ({exc}); export "
            "it with: openssl pkey -in private.pem -pubout -out public.pem"
        ) from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SealKeyError(f"AUDIT_SEAL_PUBLIC_KEY_FILE = {path!r} is not an Ed25519 key.")
    return key


def _raw(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Signer:
    """The key that authenticates new records."""

    method: str
    key_id: str
    sign: Callable[[bytes], bytes] = field(repr=False)

    def authenticate(self, record_hash: bytes) -> bytes:
        """The authenticator of a record with hash ``record_hash``."""
        return self.sign(message(record_hash))


def signer() -> Signer:
    """The configured sealing key; SealKeyError with the fix when there is none."""
    private_file = conf.seal_private_key_file()
    if private_file:
        key = load_private_key(private_file)
        return Signer(ED25519, ed25519_key_id(_raw(key.public_key())), key.sign)
    keys = conf.seal_keys()
    if not keys:
        raise SealKeyError(_NO_KEY)
    key = keys[0]
    return Signer(HMAC, hmac_key_id(key), lambda data: hmac.new(key, data, "sha256").digest())


class Keyring:
    """Every configured key that may check records, by (method, key id)."""

    def __init__(self, hmac_keys: list[bytes], public_keys: list[Any]) -> None:
        self._checks: dict[tuple[str, str], Callable[[bytes, bytes], bool]] = {}
        for key in hmac_keys:
            self._checks[(HMAC, hmac_key_id(key))] = lambda data, tag, k=key: hmac.compare_digest(
                hmac.new(k, data, "sha256").digest(), tag
            )
        for public in public_keys:
            self._checks[(ED25519, ed25519_key_id(_raw(public)))] = lambda data, tag, p=public: (
                _ed25519_valid(p, data, tag)
            )

    @property
    def key_ids(self) -> list[str]:
        """ "method:key id" of every key in the ring, for messages."""
        return [f"{method}:{key_id}" for method, key_id in self._checks]

    def knows(self, method: str, key_id: str) -> bool:
        """Whether the ring holds that key."""
        return (method, key_id) in self._checks

    def check(self, method: str, key_id: str, record_hash: bytes, authenticator: bytes) -> bool:
        """Whether ``authenticator`` is valid for ``record_hash`` under that key (False for
        a key not in the ring)."""
        test = self._checks.get((method, key_id))
        return bool(test and test(message(record_hash), bytes(authenticator)))


def _ed25519_valid(public_key: Any, data: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def keyring() -> Keyring:
    """The configured checking keys; SealKeyError with the fix when there are none."""
    public_keys = []
    if conf.seal_public_key_file():
        public_keys.append(load_public_key(conf.seal_public_key_file()))
    elif conf.seal_private_key_file():
        public_keys.append(load_private_key(conf.seal_private_key_file()).public_key())
    ring = Keyring(conf.seal_keys(), public_keys)
    if not ring.key_ids:
        raise SealKeyError(_NO_KEY)
    return ring


def configured() -> bool:
    """Whether any seal key setting is set (usable or not)."""
    return bool(conf.seal_keys() or conf.seal_private_key_file() or conf.seal_public_key_file())


def key_file_problems() -> list[str]:
    """Why the configured key files cannot be used (empty when they can, or none is set)."""
    problems = []
    for path, load in (
        (conf.seal_private_key_file(), load_private_key),
        (conf.seal_public_key_file(), load_public_key),
    ):
        if path:
            try:
                load(path)
            except SealKeyError as exc:
                problems.append(str(exc))
    return problems
