"""The replay gate: refuse a candidate whose loss on recorded traffic is worse than the champion's.

The loss is the pipeline's task figure, lower is better: MAE for regression, log loss for binary
classification. Relative, like the publish gate (``model_topic.gate``): the candidate fails when
``(candidate loss - champion loss) / champion loss > tolerance``. Unlike the publish gate, both
losses come from the same archive, scored by the same dataflow: a like-for-like comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

from edml.replay.report import VersionStats

from edml.core.errors import OperatorError
from edml.pipelines.figures import LOSS

DEFAULT_TOLERANCE = 0.05
_NAMES = {"mae": "MAE", "log_loss": "log loss"}


class GateUndecidable(OperatorError):
    """The gate cannot compare: no labels for the replayed events."""


@dataclass(frozen=True)
class GateDecision:
    """Pass or fail, and the one-line reason."""

    passed: bool
    reason: str


def decide(candidate: VersionStats, champion: VersionStats | None,
           tolerance: float = DEFAULT_TOLERANCE) -> GateDecision:
    """Whether ``candidate`` may replace ``champion`` (None: there is no champion yet)."""
    if tolerance < 0:
        raise OperatorError(f"tolerance {tolerance} must be >= 0")
    name = _NAMES.get(LOSS[candidate.task], LOSS[candidate.task])
    digits = 1 if LOSS[candidate.task] == "mae" else 4
    if candidate.loss is None:
        raise GateUndecidable("the archive has no labels for the replayed events: the gate needs them "
                              "(record the pipeline's label topic too)")
    if champion is None:
        return GateDecision(True, f"no champion to compare with: candidate {candidate.version} {name} "
                                  f"{candidate.loss:.{digits}f} on {candidate.with_label} events")
    if champion.loss is None:
        raise GateUndecidable(f"champion {champion.version} has no prediction with a label")
    worse = (candidate.loss - champion.loss) / champion.loss if champion.loss > 0 else (
        0.0 if candidate.loss == 0 else float("inf"))
    verdict = (f"candidate {candidate.version} {name} {candidate.loss:.{digits}f} vs champion {champion.version} "
               f"{name} {champion.loss:.{digits}f} on {candidate.with_label} replayed events ({worse:+.1%}, "
               f"tolerance {tolerance:.1%})")
    if worse > tolerance:
        return GateDecision(False, f"replay gate refused: {verdict}")
    return GateDecision(True, f"replay gate passed: {verdict}")
