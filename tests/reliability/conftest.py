"""Fixtures of the reliability suite: tiny real SavedModels to publish."""

from __future__ import annotations

import pytest

from tests.reliability.harness import TinyModels


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Two good models that predict differently, one with a wrong signature, one that returns NaN."""
    from tests.helpers.savedmodels import NAN, WRONG_SIGNATURE, write_model_dir

    root = tmp_path_factory.mktemp("tiny-models")
    return TinyModels(
        v1=write_model_dir(root / "v1", base=120.0, per_km=150.0),
        v2=write_model_dir(root / "v2", base=90.0, per_km=170.0),
        wrong_signature=write_model_dir(root / "wrong-signature", kind=WRONG_SIGNATURE),
        nan=write_model_dir(root / "nan", kind=NAN),
    )
