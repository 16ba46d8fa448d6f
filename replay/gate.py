"""The replay gate: refuse a candidate whose MAE on recorded traffic is worse than the champion's.

Relative, like the publish gate (``model_topic.gate``): the candidate fails when
``(candidate MAE - champion MAE) / champion MAE > tolerance``. Unlike the publish gate, both
MAEs come from the same archive, scored by the same dataflow: a like-for-like comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

from edml.replay.report import VersionStats

from edml.core.errors import OperatorError

DEFAULT_TOLERANCE = 0.05


class GateUndecidable(OperatorError):
    """The gate cannot compare: no actual durations for the replayed trips."""


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
    if candidate.mae is None:
        raise GateUndecidable("the archive has no drop-offs for the replayed trips: the gate needs actual "
                              "durations (record the dropoffs topic too)")
    if champion is None:
        return GateDecision(True, f"no champion to compare with: candidate {candidate.version} MAE "
                                  f"{candidate.mae:.1f} s on {candidate.with_actual} trips")
    if champion.mae is None:
        raise GateUndecidable(f"champion {champion.version} has no prediction with an actual duration")
    worse = (candidate.mae - champion.mae) / champion.mae if champion.mae > 0 else (
        0.0 if candidate.mae == 0 else float("inf"))
    verdict = (f"candidate {candidate.version} MAE {candidate.mae:.1f} s vs champion {champion.version} MAE "
               f"{champion.mae:.1f} s on {candidate.with_actual} replayed trips ({worse:+.1%}, tolerance "
               f"{tolerance:.1%})")
    if worse > tolerance:
        return GateDecision(False, f"replay gate refused: {verdict}")
    return GateDecision(True, f"replay gate passed: {verdict}")
