"""Score rows with an exported SavedModel, the way the project does: one signature call per batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from edml.trainer.features import INPUT_SPECS
from edml.trainer.model import OUTPUT_NAME, SIGNATURE_KEY


def input_tensors(columns: dict[str, Any]) -> dict[str, Any]:
    """The signature's input tensors from raw columns (extra columns such as trip_id are ignored)."""
    import tensorflow as tf

    missing = [name for name in INPUT_SPECS if name not in columns]
    if missing:
        raise ValueError(f"columns lack model inputs: {', '.join(missing)}")
    return {name: tf.constant(np.asarray(columns[name]), dtype=dtype) for name, dtype in INPUT_SPECS.items()}


def predict_rows(saved_model_dir: Path | str, columns: dict[str, Any]) -> np.ndarray:
    """Predicted durations (float32 seconds) for the rows in ``columns`` (field name -> values)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model_dir))
    signature = loaded.signatures[SIGNATURE_KEY]
    return signature(**input_tensors(columns))[OUTPUT_NAME].numpy()
