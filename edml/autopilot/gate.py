"""The replay gate on held-out recorded traffic: the candidate against the champion, like ``edml replay --gate``.

Both versions score the held-out archive in one replay of the scoring dataflow (the champion as
champion, the candidate in shadow), and :func:`edml.replay.gate.decide` compares their losses
against the archived labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edml.core.config import Settings
from edml.pipelines.bound import BoundPipeline
from edml.replay.archive import ArchiveReader
from edml.replay.file_io import output_columns, read_predictions
from edml.replay.gate import GateDecision, decide
from edml.replay.models import load_desired, load_folder
from edml.replay.report import VersionStats, build_report, judging_of, pipeline_labels
from edml.replay.run import replay_archive, replay_serdes
from edml.schemas.records import ModelRecord


@dataclass(frozen=True)
class GateOutcome:
    """The gate's decision and both versions' figures on the held-out events."""

    decision: GateDecision
    candidate: VersionStats
    champion: VersionStats | None
    events: int


def replay_gate(settings: Settings, bound: BoundPipeline, archive: Path, champion: ModelRecord | None,
                candidate_dir: Path, candidate_version: str, tolerance: float, workdir: Path) -> GateOutcome:
    """Replay ``archive`` through the champion and the candidate folder; the gate's decision on their losses."""
    reader = ArchiveReader(archive)
    serdes = replay_serdes(settings, bound)
    candidate = load_folder(candidate_dir, settings.model_name, candidate_version, workdir / "candidate", bound)
    serving = load_desired(champion, workdir / "champion", bound) if champion is not None else None
    first, shadow = (candidate, ()) if serving is None else (serving, (candidate,))
    result = replay_archive(reader, first, workdir / "replay", shadow, serdes=serdes, bound=bound, settings=settings)
    predictions = read_predictions(result.predictions_path)
    labels = pipeline_labels(reader, bound, serdes)
    judging = judging_of(bound.pipeline, output_columns([first.prediction_schema], bound.pipeline.input.key))
    report = build_report(result, predictions, labels, judging)
    candidate_stats = report.stats(candidate.version, "champion" if serving is None else "challenger")
    assert candidate_stats is not None  # the replay scored every event with the candidate
    champion_stats = None if serving is None else report.stats(serving.version, "champion")
    return GateOutcome(decide(candidate_stats, champion_stats, tolerance), candidate_stats, champion_stats,
                       result.events)
