"""Evaluation: error measures, the two baselines, and the reference distributions for drift checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from edml.trainer.generator import TripColumns

TOP_CATEGORIES = 30
N_QUANTILE_BINS = 10


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(y, np.float64) - np.asarray(pred, np.float64))))


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(y, np.float64) - np.asarray(pred, np.float64)) ** 2)))


@dataclass(frozen=True)
class Baselines:
    """Errors of the two baselines on the test rows: the training mean, and a linear fit on distance."""

    mean_mae: float
    mean_rmse: float
    distance_mae: float
    distance_rmse: float


def baselines(
    train_distance: np.ndarray, train_y: np.ndarray, test_distance: np.ndarray, test_y: np.ndarray
) -> Baselines:
    """Fit both baselines on the training rows and measure them on the test rows."""
    mean_pred = np.full_like(test_y, float(np.mean(train_y)), dtype=np.float64)
    slope, intercept = np.polyfit(train_distance, train_y, 1)
    dist_pred = slope * test_distance + intercept
    return Baselines(mae(test_y, mean_pred), rmse(test_y, mean_pred), mae(test_y, dist_pred), rmse(test_y, dist_pred))


def _numeric_reference(values: np.ndarray) -> dict[str, Any]:
    # Edges are the inner decile cut points; bin i holds edges[i-1] < x <= edges[i] (first and last open),
    # so len(fractions) == len(edges) + 1 and values outside the training range still land in a bin.
    edges = np.unique(np.quantile(values, np.linspace(0, 1, N_QUANTILE_BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    # min and max: the training range a pipeline's `infer` constraint widens (edml.pipelines.constraints)
    return {"kind": "numeric", "edges": [float(e) for e in edges], "fractions": (counts / counts.sum()).tolist(),
            "min": float(values.min()), "max": float(values.max())}


def _categorical_reference(values: list[Any]) -> dict[str, Any]:
    uniq, counts = np.unique(np.asarray(values), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:TOP_CATEGORIES]
    total = counts.sum()
    top = [(uniq[i].item(), counts[i] / total) for i in order]
    other = 1.0 - sum(f for _, f in top)
    return {
        "kind": "categorical",
        "values": [v for v, _ in top] + ["other"],
        "fractions": [float(f) for _, f in top] + [max(0.0, float(other))],
    }


def reference_distributions(columns: TripColumns, inputs: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Per model input, the training distribution that live traffic is compared against.

    ``inputs``: only these model inputs (a model that does not read the zones has no zone
    reference, so trips with bad zones, which it scores, do not count as drift); None: every one.

    Numeric: ``{"kind": "numeric", "edges": [inner decile cut points], "fractions": [len(edges)+1]}``
    where bin i is ``edges[i-1] < x <= edges[i]``. Categorical: ``{"kind": "categorical", "values":
    [top values..., "other"], "fractions": [...]}``. ``pickup_time`` itself always moves on, so it is
    described by ``pickup_hour`` (its hour of day, 0..23, categorical). ``duration_s`` (the target)
    is there too: slower traffic changes no input, only the durations that drop-offs report.
    """
    hour = ((columns.pickup_time % 86_400_000) // 3_600_000).astype(np.int64)
    every = {
        "pickup_zone": lambda: _categorical_reference(columns.pickup_zone.tolist()),
        "dropoff_zone": lambda: _categorical_reference(columns.dropoff_zone.tolist()),
        "pickup_borough": lambda: _categorical_reference(list(columns.pickup_borough)),
        "passenger_count": lambda: _numeric_reference(columns.passenger_count.astype(np.float64)),
        "trip_distance_km": lambda: _numeric_reference(columns.trip_distance_km.astype(np.float64)),
        "pickup_hour": lambda: _categorical_reference(hour.tolist()),
        "duration_s": lambda: _numeric_reference(columns.duration_s.astype(np.float64)),
    }
    # pickup_hour stands for pickup_time; duration_s is the target, there for every model
    source = {"pickup_hour": "pickup_time", "duration_s": None}
    wanted = [name for name in every if inputs is None or source.get(name, name) in (*inputs, None)]
    return {name: every[name]() for name in wanted}
