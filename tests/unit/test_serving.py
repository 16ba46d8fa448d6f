"""A trip's prediction does not depend on the batch it is scored in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from edml.model_topic.artifact import load_saved_model, signature_of
from edml.trainer.generator import generate_columns

from edml.scoring.serving import LoadedModel, bind_inputs


def test_prediction_is_independent_of_batch_size(trained_model_dir: Path) -> None:
    function = load_saved_model(trained_model_dir / "saved_model")
    signature = signature_of(function)
    model = LoadedModel(record=None, manifest=None, function=function,  # type: ignore[arg-type]
                        bindings=bind_inputs(signature), outputs=tuple(signature.outputs))
    cols = generate_columns(1000, seed=5)
    trips = {b.name: np.asarray(getattr(cols, b.name)) for b in model.bindings}
    whole = model.predict_columns(trips)
    for size in (1, 3, 7, 333):
        parts = np.concatenate([model.predict_columns({k: v[i:i + size] for k, v in trips.items()})
                                for i in range(0, 1000, size)])
        assert np.array_equal(parts, whole), f"batches of {size} changed {np.sum(parts != whole)} predictions"
