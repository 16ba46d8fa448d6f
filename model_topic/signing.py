"""Optional ed25519 signatures on model records.

The publisher signs the record's Avro encoding with ``signature_ed25519`` set to null; a
scorer holding the public key (``Settings.model_public_key``) verifies it before it fetches the
artifact. The record carries the artifact's sha256, so the signature covers the model bytes too.

The topic key is not in the signed bytes: a scorer accepts a record only under its own model
name as key (``scoring.loader.record_problem``), and the model name is signed, so the key is
covered without changing what is signed (signatures made before still verify).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from edml.schemas.records import ModelRecord
from edml.schemas.serde import model_record_serde

from edml.core.errors import OperatorError, Refusal

PRIVATE_KEY_FILE = "model-signing.key"
PUBLIC_KEY_FILE = "model-signing.pub"


class SignatureInvalid(Refusal):
    """A record whose signature is missing or does not verify; ``reason`` is one line."""


class SigningKeyError(OperatorError):
    """A signing or verification key that cannot be read."""


def signed_bytes(record: ModelRecord) -> bytes:
    """The bytes a signature covers: the record's encoding with ``signature_ed25519`` null."""
    return model_record_serde().encode(dataclasses.replace(record, signature_ed25519=None))


def _private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise SigningKeyError(f"signing key is not an unencrypted PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key is {type(key).__name__}, expected an ed25519 key")
    return key


def _public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise SigningKeyError(f"model public key is not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"model public key is {type(key).__name__}, expected an ed25519 key")
    return key


def check_public_key(public_key_pem: bytes) -> None:
    """Return if ``public_key_pem`` is an ed25519 public key in PEM; else SigningKeyError (one line)."""
    _public_key(public_key_pem)


def sign_record(record: ModelRecord, private_key_pem: bytes) -> ModelRecord:
    """A copy of ``record`` with ``signature_ed25519`` set over :func:`signed_bytes`."""
    signature = _private_key(private_key_pem).sign(signed_bytes(record))
    return dataclasses.replace(record, signature_ed25519=signature)


def verify_record(record: ModelRecord, public_key_pem: bytes) -> None:
    """Return if ``record`` carries a valid signature for ``public_key_pem``; else SignatureInvalid."""
    if not record.signature_ed25519:
        raise SignatureInvalid(f"{record.model_name} {record.version} is not signed")
    try:
        _public_key(public_key_pem).verify(record.signature_ed25519, signed_bytes(record))
    except InvalidSignature:
        raise SignatureInvalid(
            f"{record.model_name} {record.version}: ed25519 signature does not verify with the model public key"
        ) from None


def read_key(value: str | Path | bytes) -> bytes:
    """PEM bytes from PEM text/bytes or from a file path."""
    if isinstance(value, bytes):
        return value
    text = str(value)
    if text.lstrip().startswith("-----BEGIN"):
        return text.encode()
    try:
        return Path(text).expanduser().read_bytes()
    except OSError as e:
        raise SigningKeyError(f"cannot read key file {text}: {e.strerror or e}") from None


def generate_keys(out_dir: Path) -> tuple[Path, Path]:
    """Write a new ed25519 key pair (private 0600) into ``out_dir``; refuses to overwrite."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / PRIVATE_KEY_FILE, out_dir / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise SigningKeyError(f"{path} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path
