"""The scoring dataflow: a pipeline's events in, predictions out, with the model from the model topic.

    input topic --held until a model is active--> decode + check --bad--> dead-letter topic
                                                        | ok, one batch per poll        ^
    model topic --per-process subscriber--> model store --> score batch --failing rows--+
                                                              | per model, one call per batch
                                              encode predictions (clock: wall / event time)
                                                              |
                                              re-use first bytes --> predictions topic
                                                                     (challengers --> shadow-predictions)
                                              alert rules (champion) --> prediction-alerts topic

The same definition runs live (``edml serve``: Kafka source and sink) and offline (``edml
replay``: an archive source and a file sink): only the source, the sink and the clock differ.
"""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from edml.kafka.messages import OutgoingMessage, SourceMessage
from edml.scoring.batch import ScoringSteps


def build_flow(events: Source[list[SourceMessage]], steps: ScoringSteps, out: Sink[list[OutgoingMessage]],
               name: str = "edml-scoring") -> Dataflow:
    """events -> decode + check -> score batch -> encode predictions -> re-use first bytes; dead letters; alerts."""
    flow = Dataflow(name)
    batches = op.input("trips", flow, events)
    decoded = op.map("decode_validate", batches, steps.decoder.decode_batch)
    scored = op.map("score_batch", decoded, steps.scorer.score)
    dead_letters = op.map("dead_letters", scored, steps.dead_letters.encode)
    encoded = op.map("encode_predictions", scored, steps.predictions.encode)
    predictions = op.map("reuse_first_bytes", encoded, steps.first_bytes.reuse)
    alerts = op.map("alerts", scored, steps.alerts.encode)
    op.output("out", op.merge("predictions_and_dead_letters", predictions, dead_letters, alerts), out)
    return flow
