"""Integration fixtures: a local Google Cloud Storage emulator for the real GCS client."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.helpers.gcs import GcsEmulator

__all__ = ["GcsEmulator", "gcs_emulator"]


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """A gcp-storage-emulator on a free port (in memory) with bucket ``edml-test-models``.

    Sets ``STORAGE_EMULATOR_HOST`` for this process and its children for the session, so every
    ``google.cloud.storage.Client()`` talks to the emulator.
    """
    emulator = GcsEmulator.start(tmp_path_factory.mktemp("gcs") / "emulator.log")
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    try:
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
        yield emulator
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
        emulator.down()
