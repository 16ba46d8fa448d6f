"""The scoring dataflow: trips in, predictions out, with the model from the model topic.

    trips topic --held until a model is active--> decode + validate --bad--> dead-letter topic
                                                        | ok, one batch per poll
    model topic --per-process subscriber--> model store --> score batch --> predictions topic
                                                            (challengers --> shadow-predictions)

The same definition runs live (``edml serve``: Kafka source and sink) and offline (``edml
replay``: an archive source and a file sink): only the source and the sink differ.
"""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from edml.schemas.validation import TripDecoder

from edml.kafka.messages import OutgoingMessage, SourceMessage
from edml.scoring.batch import BatchScorer


def build_flow(trips: Source[list[SourceMessage]], scorer: BatchScorer, out: Sink[list[OutgoingMessage]],
               name: str = "edml-scoring") -> Dataflow:
    """trips -> decode + validate -> score batch -> predictions; bad events -> dead letters."""
    flow = Dataflow(name)
    batches = op.input("trips", flow, trips)
    decoded = op.map("decode_validate", batches, TripDecoder(scorer.serdes.trips).decode_batch)
    dead_letters = op.map("dead_letters", decoded, scorer.dead_letters)
    predictions = op.map("score_batch", decoded, scorer.score)
    op.output("out", op.merge("predictions_and_dead_letters", predictions, dead_letters), out)
    return flow
