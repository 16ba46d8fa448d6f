"""The evaluation dataflow: live error per model version, and drift.

    predictions + shadow-predictions --decode--> join by trip id <--decode-- dropoffs
        (bad --> dead-letter topic)      (sharded, event time,        (actual duration)
                                          whichever side first,
                                          unmatched expire after 24 h)
                                                 |
                                                 +--> evaluations topic (per trip: evaluated / expired)
                                                 v
                         tumbling windows per model version --> scores topic (count, MAE, RMSE, bias, p90)
                                                                + Prometheus gauges

    trips (inputs, by pick-up time) + dropoffs (duration, by drop-off time)
        --> per-window PSI against the model's reference --> alerts topic (PSI > threshold)
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from edml.evaluation.config import EvaluationConfig
from edml.evaluation.drift import Reference
from edml.evaluation.operators import (
    check_dropoff,
    check_prediction,
    drift_alerts,
    join_trips,
    kafka_records,
    score_windows,
    to_kafka,
)

from edml.core.config import Settings, load_settings


def build_flow(
    settings: Settings, config: EvaluationConfig, reference: Reference | None = None, tail: bool = True
) -> Dataflow:
    """The evaluation dataflow; ``tail=False`` stops at the end of the input topics (tests, backfills)."""
    t = settings.topics
    flow = Dataflow("edml-evaluation")
    predictions = kafka_records("predictions", flow, settings, [t.predictions, t.shadow_predictions], "Prediction",
                                check_prediction, tail)
    dropoffs = kafka_records("dropoffs", flow, settings, [t.labels], "TripDropoff", check_dropoff, tail)
    dead = op.merge("bad_inputs", predictions.dead, dropoffs.dead)
    to_kafka("dead_letters", dead, settings, t.dead_letter, "DeadLetter",
             key=lambda d: f"{d.source_topic}/{d.partition}/{d.offset}")

    outcomes = join_trips("join", predictions.oks, dropoffs.oks, config)
    to_kafka("evaluations", outcomes, settings, t.evaluations, "Evaluation", key=lambda e: e.trip_id)

    scores = score_windows("score_windows", outcomes, config)
    to_kafka("scores", scores, settings, t.scores, "ScoreWindow", key=lambda w: w.model_name)

    if reference is not None:
        # Undecodable trips are the scorer's to dead-letter; here they are only counted.
        trips = kafka_records("trips", flow, settings, [t.trips], "TripPickup", lambda _t: None, tail)
        alerts = drift_alerts("drift", trips.oks, dropoffs.oks, reference, config)
        to_kafka("alerts", alerts, settings, t.alerts, "DriftAlert", key=lambda a: a.feature)
    return flow


def get_flow() -> Dataflow:
    """The flow with settings from edml.toml / the environment, for ``python -m bytewax.run``."""
    return build_flow(load_settings(), EvaluationConfig())
