"""The evaluation dataflow of one pipeline: live figures per model version, and drift.

    predictions + shadow-predictions --decode--> join by the pipeline's key <--decode-- labels
        (bad --> dead-letter topic)      (sharded, event time,               (the truth)
                                          whichever side first,
                                          unmatched expire after 24 h)
                                                 |
                                                 +--> evaluations topic (per key: evaluated / expired)
                                                 v
                         tumbling windows per model version --> scores topic (count, MAE, RMSE, bias, p90;
                                                                binary: log loss, AUC, accuracy, precision,
                                                                recall) + Prometheus gauges

    input events (model inputs, by event time) + labels (the target, by label time)
        --> per-window PSI against the model's reference --> alerts topic (PSI > threshold)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from edml.evaluation.config import EvaluationConfig
from edml.evaluation.drift import DriftFeatures, Reference, References
from edml.evaluation.judged import JudgedPipeline, judged_pipeline, model_signatures, prediction_writers
from edml.evaluation.operators import drift_alerts, join_keys, kafka_records, score_windows, to_kafka

from edml.core.config import Settings, load_settings
from edml.pipelines.bound import BoundPipeline, open_pipeline, pipeline_settings
from edml.pipelines.declaration import DEFAULT_PIPELINE


def build_flow(
    settings: Settings, config: EvaluationConfig, judged: JudgedPipeline,
    reference: Reference | References | None = None, drift: DriftFeatures | None = None, tail: bool = True,
    refresh: Callable[[], list[dict[str, Any]]] | None = None,
) -> Dataflow:
    """The evaluation dataflow of ``judged`` (``settings``: the pipeline's); ``tail=False`` stops at the end of
    the input topics (tests, backfills). Drift is checked when both ``reference`` and ``drift`` are given.
    ``refresh`` gives the prediction writer schemas of the model topic now, for models published later."""
    t = settings.topics
    flow = Dataflow("edml-evaluation" if judged.name == DEFAULT_PIPELINE else f"edml-evaluation-{judged.name}")
    prediction_serdes = {topic: judged.prediction_serde(settings, topic, refresh) for topic in (t.predictions,
                                                                                                  t.shadow_predictions)}
    predictions = kafka_records("predictions", flow, settings, prediction_serdes, lambda p, _ts: judged.scored(p),
                                tail)
    labels = kafka_records("labels", flow, settings, {t.labels: judged.label_serde(settings)}, judged.label, tail)
    dead = op.merge("bad_inputs", predictions.dead, labels.dead)
    to_kafka("dead_letters", dead, settings, t.dead_letter, "DeadLetter",
             key=lambda d: f"{d.source_topic}/{d.partition}/{d.offset}")

    outcomes = join_keys("join", predictions.oks, labels.oks, config)
    to_kafka("evaluations", outcomes, settings, t.evaluations, "Evaluation", key=lambda e: e.key)

    scores = score_windows("score_windows", outcomes, config, judged.task, judged.threshold)
    to_kafka("scores", scores, settings, t.scores, "ScoreWindow", key=lambda w: w.model_name)

    if reference is not None and drift is not None:
        features = drift

        def observe(event: dict[str, Any], _ts: int) -> Any:
            time = event.get(features.event_time)
            return features.of_event(event, time) if isinstance(time, int) else f"{features.event_time} is {time!r}"

        # Undecodable events are the scorer's to dead-letter; here they are only counted.
        events = kafka_records("inputs", flow, settings, {t.trips: judged.input_serde(settings)}, observe, tail)
        targets = op.map("targets", labels.oks, lambda label: features.of_label({features.target: label.actual},
                                                                                 label.time))
        alerts = drift_alerts("drift", events.oks, targets, reference, features.seasonal, config)
        to_kafka("alerts", alerts, settings, t.alerts, "DriftAlert", key=lambda a: a.feature)
    return flow


def drift_features(bound: BoundPipeline) -> DriftFeatures:
    """The features the drift check of ``bound`` compares: model inputs, the event time's hour, the label."""
    from edml.evaluation.drift import hour_feature

    pipeline = bound.pipeline
    inputs = {name: name for name in bound.fields if name not in (pipeline.input.key, pipeline.input.event_time)}
    inputs.update({model_input: field for model_input, field in pipeline.inputs.items() if field in bound.fields})
    target = pipeline.labels.field if pipeline.labels is not None else ""
    return DriftFeatures(inputs, pipeline.input.event_time, hour_feature(pipeline.input.event_time), target)


def pipeline_flow(
    settings: Settings, config: EvaluationConfig, bound: BoundPipeline, reference: Reference | References | None = None,
    tail: bool = True,
) -> Dataflow:
    """The evaluation dataflow of ``bound`` (``settings``: the pipeline's), its prediction writers read from the
    model topic; drift against ``reference`` when given."""
    judged = judged_pipeline(bound, model_signatures(settings, bound.pipeline.models))

    def refresh() -> list[dict[str, Any]]:
        return prediction_writers(bound, model_signatures(settings, bound.pipeline.models))

    return build_flow(settings, config, judged, reference, drift_features(bound), tail, refresh)


def get_flow() -> Dataflow:
    """The default pipeline's flow with settings from edml.toml / the environment, for ``python -m bytewax.run``."""
    settings = load_settings()
    bound = open_pipeline(None, settings)
    return pipeline_flow(pipeline_settings(settings, bound.pipeline), EvaluationConfig(), bound)
