"""Prometheus metrics of the evaluation: live error per model version, expiries, drift.

Gauges show the newest window of each version: a late revision of an older window does not
move them back in time.
"""

from __future__ import annotations

from edml.evaluation.drift import DriftReading
from edml.evaluation.join import EVALUATED, NO_LABEL, NO_PREDICTION
from edml.schemas.records import Evaluation, ScoreWindow
from prometheus_client import Counter, Gauge

_VERSION = ["model_version", "role"]
MAE = Gauge("edml_eval_mae", "Mean absolute error (label unit) of the newest window", _VERSION)
RMSE = Gauge("edml_eval_rmse", "Root mean squared error of the newest window", _VERSION)
BIAS = Gauge("edml_eval_bias", "Mean of predicted minus actual of the newest window", _VERSION)
P90 = Gauge("edml_eval_p90_abs_error", "90th percentile absolute error of the newest window", _VERSION)
COUNT = Gauge("edml_eval_count", "Evaluated predictions in the newest window", _VERSION)
LOG_LOSS = Gauge("edml_eval_log_loss", "Binary tasks: log loss of the newest window", _VERSION)
ROC_AUC = Gauge("edml_eval_roc_auc", "Binary tasks: ROC AUC of the newest window", _VERSION)
WINDOW_START = Gauge("edml_eval_window_start_seconds", "Start of the newest window (event time)", _VERSION)
EVALUATED_TOTAL = Counter("edml_eval_trips", "Predictions evaluated against their label", _VERSION)
EXPIRED_TOTAL = Counter(
    "edml_eval_expired", "Unmatched sides that expired: a prediction without label, a label without prediction",
    ["side"],
)
DROPPED_LATE_TOTAL = Counter("edml_eval_dropped_late", "Items older than the window retention, not counted", ["step"])
INVALID_TOTAL = Counter("edml_eval_invalid", "Input messages that could not be decoded or validated", ["topic"])
SOURCE_ERRORS_TOTAL = Counter("edml_eval_source_errors", "Consumer errors reported by the Kafka source", ["topic"])
PSI = Gauge("edml_drift_psi", "Population stability index of the newest complete window", ["feature"])
ALERTS_TOTAL = Counter("edml_drift_alerts", "Drift alerts raised", ["feature"])

_newest: dict[tuple[str, ...], int] = {}


def record_outcome(evaluation: Evaluation) -> None:
    """Count an evaluated prediction or an expired side."""
    if evaluation.outcome == EVALUATED:
        EVALUATED_TOTAL.labels(evaluation.model_version, evaluation.role).inc()
    elif evaluation.outcome == NO_LABEL:
        EXPIRED_TOTAL.labels("prediction").inc()
    elif evaluation.outcome == NO_PREDICTION:
        EXPIRED_TOTAL.labels("label").inc()


def record_score_window(window: ScoreWindow) -> None:
    """Show the window on the gauges when it is the version's newest."""
    labels = (window.model_version, window.role)
    if window.window_start < _newest.get(labels, window.window_start):
        return
    _newest[labels] = window.window_start
    MAE.labels(*labels).set(window.mae)
    RMSE.labels(*labels).set(window.rmse)
    BIAS.labels(*labels).set(window.bias)
    P90.labels(*labels).set(window.p90_abs_error)
    COUNT.labels(*labels).set(window.count)
    WINDOW_START.labels(*labels).set(window.window_start / 1000)
    if window.log_loss is not None:
        LOG_LOSS.labels(*labels).set(window.log_loss)
    if window.roc_auc is not None:
        ROC_AUC.labels(*labels).set(window.roc_auc)


def record_reading(reading: DriftReading, alerted: bool) -> None:
    """Show a feature's PSI (when there were enough events) and count alerts."""
    key = ("psi", reading.feature)
    if reading.psi is not None and reading.window_start >= _newest.get(key, reading.window_start):
        _newest[key] = reading.window_start
        PSI.labels(reading.feature).set(reading.psi)
    if alerted:
        ALERTS_TOTAL.labels(reading.feature).inc()
