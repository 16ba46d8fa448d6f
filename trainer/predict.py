"""Score rows with an exported SavedModel, the way the project does: one signature call per batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from edml.trainer.features import INPUT_SPECS
from edml.trainer.model import OUTPUT_NAME, SIGNATURE_KEY


def input_tensors(columns: dict[str, Any], specs: dict[str, Any] = INPUT_SPECS) -> dict[str, Any]:
    """The input tensors ``specs`` (name -> dtype; default: every input) from raw columns; others are ignored."""
    import tensorflow as tf

    missing = [name for name in specs if name not in columns]
    if missing:
        raise ValueError(f"columns lack model inputs: {', '.join(missing)}")
    return {name: tf.constant(np.asarray(columns[name]), dtype=dtype) for name, dtype in specs.items()}


def predict_rows(saved_model_dir: Path | str, columns: dict[str, Any]) -> np.ndarray:
    """Predicted durations (float32 seconds) for the rows in ``columns`` (field name -> values).

    The columns the model's signature takes are fed; any others (trip_id, fields it does not read) are ignored.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model_dir))
    signature = loaded.signatures[SIGNATURE_KEY]
    specs = {name: spec.dtype for name, spec in signature.structured_input_signature[1].items()}
    return signature(**input_tensors(columns, specs))[OUTPUT_NAME].numpy()
