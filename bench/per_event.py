"""Per-event scoring, for benchmarks only: one model call per trip, to measure what batching saves.

``edml serve --per-event`` (from a checkout, where ``bench`` imports) scores with
:func:`call_per_event` instead of one call per batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from edml.model_topic.gate import CheckedOutput

from edml.scoring.serving import LoadedModel


def call_per_event(model: LoadedModel, columns: dict[str, Any]) -> CheckedOutput:
    """One model call per row; the outputs checked and joined as one batch call's would be."""
    n = len(next(iter(columns.values())))
    parts = [model.call({k: v[i:i + 1] for k, v in columns.items()}) for i in range(n)]
    for i, part in enumerate(parts):
        if part.problem is not None:
            return CheckedOutput(None, f"row {i}: {part.problem}", np.empty(0, dtype=np.int64))
    if not parts:
        return CheckedOutput({s.name: np.empty(0) for s in model.outputs}, None, np.empty(0, dtype=np.int64))
    values = {name: np.concatenate([p.values[name] for p in parts]) for name in parts[0].values}
    nonfinite = np.concatenate([p.nonfinite + i for i, p in enumerate(parts)])
    return CheckedOutput(values, None, nonfinite.astype(np.int64))
