"""The trained model: accuracy against baselines, its SavedModel contract, its output files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.predict import predict_rows


def test_model_beats_both_baselines(trained_model_dir: Path) -> None:
    m = json.loads((trained_model_dir / "metrics.json").read_text())
    assert m["mae"] <= 0.6 * m["baseline_mean_mae"]
    assert m["mae"] < m["baseline_distance_mae"]
    assert m["n_test"] > 0 and m["n_train"] > m["n_test"]


def test_golden_outputs_are_what_the_saved_model_returns(trained_model_dir: Path) -> None:
    golden = json.loads((trained_model_dir / "golden.json").read_text())
    pred = predict_rows(trained_model_dir / "saved_model", golden["inputs"])
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred, golden["outputs"], rtol=1e-5)
