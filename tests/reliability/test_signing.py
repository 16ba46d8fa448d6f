"""A record signature covers every field of the record; a bad signature is a reason, never a crash."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from edml.model_topic.signing import SignatureInvalid, generate_keys, read_key, sign_record, verify_record
from edml.schemas.records import ModelRecord, ModelSignature, TensorSpec

from edml.core.config import Settings
from edml.scoring.loader import ModelRejected
from edml.scoring.trust import record_check

RECORD = ModelRecord(
    model_name="trip-duration", version="v1", artifact_uri="gs://models/trip-duration/v1.tar.gz",
    sha256="ab" * 32, size_bytes=1234,
    signature=ModelSignature([TensorSpec("trip_distance_km", "float32", [-1])],
                             [TensorSpec("duration_s", "float32", [-1])]),
    trained_at=1_700_000_000_000, metrics={"mae": 180.0}, git_sha="0123abc", data_window_start=1,
    data_window_end=2, trainer_params={"epochs": "3"}, challengers=["v0"], published_at=1_700_000_000_500,
)

# one change per field (a signature must not verify once any of them differs)
CHANGES = {
    "model_name": "other-model", "version": "v2", "artifact_uri": "gs://models/trip-duration/evil.tar.gz",
    "sha256": "cd" * 32, "size_bytes": 1, "signature": ModelSignature([], []), "trained_at": 0,
    "artifact_format": "other", "metrics": {"mae": 1.0}, "git_sha": "fffffff", "data_window_start": None,
    "data_window_end": 3, "trainer_params": {}, "challengers": ["v1", "evil"], "published_at": None,
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, Path]:
    """(private PEM, public PEM, public key path)."""
    private, public = generate_keys(tmp_path_factory.mktemp("keys"))
    return read_key(private), read_key(public), public


def test_every_field_is_covered_by_the_signature(keys: tuple[bytes, bytes, Path]) -> None:
    private, public, _ = keys
    signed = sign_record(RECORD, private)
    verify_record(signed, public)
    assert set(CHANGES) | {"signature_ed25519"} == {f.name for f in dataclasses.fields(ModelRecord)}
    for name, value in CHANGES.items():
        with pytest.raises(SignatureInvalid, match="does not verify"):
            verify_record(dataclasses.replace(signed, **{name: value}), public)
    print(f"\n[signing] {len(CHANGES)} fields each changed after signing: all refused")


@pytest.mark.parametrize("signature", [b"", b"\x00", b"\x00" * 64, b"\xff" * 65, b"x" * 1000])
def test_malformed_signatures_are_rejections(keys: tuple[bytes, bytes, Path], signature: bytes) -> None:
    _, _, public_path = keys
    check = record_check(Settings(model_public_key=str(public_path)))
    with pytest.raises(ModelRejected, match="record signature"):
        check(dataclasses.replace(RECORD, signature_ed25519=signature))


def test_without_a_public_key_records_are_not_checked() -> None:
    assert record_check(Settings()) is None
