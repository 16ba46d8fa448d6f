"""The gs:// artifact store with the real google-cloud-storage client against a local emulator."""

from __future__ import annotations

import uuid

import pytest
from edml.model_topic.stores import (
    ArtifactMissing,
    GCSStore,
    StoreUnavailable,
    VersionExists,
    fetch_artifact,
    open_store,
)

from tests.integration.conftest import GcsEmulator

NAME = "trip-duration"


def test_put_get_versions_and_immutability(gcs_emulator: GcsEmulator) -> None:
    store = open_store(gcs_emulator.store_uri(f"models-{uuid.uuid4().hex[:6]}"))
    assert isinstance(store, GCSStore)
    assert store.versions(NAME) == []
    uri = store.put(NAME, "0.1.0-1", b"first artifact")
    assert uri.startswith(f"gs://{gcs_emulator.bucket}/") and uri.endswith(f"/{NAME}/0.1.0-1.tar.gz")
    assert store.get(uri) == b"first artifact"
    assert fetch_artifact(uri) == b"first artifact"
    with pytest.raises(VersionExists, match="already exists"):
        store.put(NAME, "0.1.0-1", b"overwrite attempt")
    assert store.get(uri) == b"first artifact"
    store.put(NAME, "0.1.0-2", b"second")
    store.put(NAME, "0.1.0-10", b"tenth")
    assert store.versions(NAME) == ["0.1.0-1", "0.1.0-2", "0.1.0-10"]
    with pytest.raises(ArtifactMissing):
        store.get(store.artifact_uri(NAME, "0.1.0-99"))


def test_unreachable_and_missing_bucket_are_store_errors(gcs_emulator: GcsEmulator) -> None:
    with pytest.raises(StoreUnavailable, match="does not exist"):
        open_store("gs://no-such-bucket-here/x").put(NAME, "1", b"x")
    dead = GCSStore(gcs_emulator.bucket, "x", timeout_s=1.0)
    import os

    saved = os.environ["STORAGE_EMULATOR_HOST"]
    os.environ["STORAGE_EMULATOR_HOST"] = "http://127.0.0.1:1"
    try:
        with pytest.raises(StoreUnavailable, match="unreachable"):
            dead.put(NAME, "1", b"x")
    finally:
        os.environ["STORAGE_EMULATOR_HOST"] = saved
