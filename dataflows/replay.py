"""The replay dataflow: the scoring dataflow of ``edml serve`` with an archive source and a file sink.

    archive (events, per partition) --> decode + validate --bad--> dead_letters.jsonl
                                            | ok, batches of the same size as live
                        models given --> score batch --> encode (event clock) --> predictions.csv
                                                                                  (sorted by key)

Not a second implementation: :func:`build_replay_flow` calls :func:`dataflows.scoring.build_flow`,
so a replay exercises the exact decode, validate, score and encode steps that serve live traffic.
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow
from edml.dataflows.scoring import build_flow
from edml.replay.file_io import ArchiveSource, PredictionFileSink

from edml.scoring.batch import ScoringSteps


def build_replay_flow(source: ArchiveSource, steps: ScoringSteps, sink: PredictionFileSink,
                      name: str = "edml-replay") -> Dataflow:
    """The scoring dataflow reading ``source`` and writing ``sink``."""
    return build_flow(source, steps, sink, name=name)
