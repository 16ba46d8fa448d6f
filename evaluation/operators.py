"""The Bytewax steps of the evaluation dataflow, each a typed operator built from the modules here.

* :func:`kafka_records`: Kafka topics -> decoded, checked records (and dead letters);
* :func:`join_keys`: predictions + labels -> one :class:`Evaluation` per prediction (or per
  expired label), through the sharded event-time join of :mod:`evaluation.join`;
* :func:`score_windows`: evaluations -> one :class:`ScoreWindow` per model version per window;
* :func:`drift_alerts`: input events + labels -> a :class:`DriftAlert` per drifted feature per window;
* :func:`to_kafka`: records -> a topic, encoded with their serde.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage, KafkaSourceMessage
from bytewax.dataflow import Dataflow, Stream, operator
from edml.evaluation import metrics
from edml.evaluation.config import EvaluationConfig
from edml.evaluation.drift import (
    DriftAccumulator,
    DriftReading,
    Observation,
    Reference,
    References,
    alert_for,
    readings,
)
from edml.evaluation.join import EVALUATED, KeyJoin, Label, Scored, shard_of
from edml.evaluation.windows import ErrorAccumulator, TumblingWindows, WindowSpec, emit_score_window, score_key
from edml.schemas.records import DeadLetter, DriftAlert, Evaluation, ScoreWindow
from edml.schemas.serde import DecodeError
from edml.schemas.wire import RecordSerde, topic_serdes

from edml.core.config import Settings
from edml.kafka.clients import base_config, producer_config
from edml.kafka.source import CommittingKafkaSource
from edml.pipelines.figures import REGRESSION

# a decoded record (and its message's Kafka timestamp) -> what the flow takes, or why it cannot
Convert = Callable[[dict[str, Any], int], Any]
log = logging.getLogger("edml.evaluation")


def _client_props(config: dict[str, Any]) -> dict[str, str]:
    # Bytewax's Kafka connectors take the brokers apart; everything else (security settings
    # included) comes from edml.kafka.clients so every client gets the same properties.
    return {k: v for k, v in config.items() if k != "bootstrap.servers"}


def _brokers(settings: Settings) -> list[str]:
    return settings.bootstrap_servers.split(",")


@dataclass(frozen=True)
class Records:
    """Decoded records of some topics, and the messages that could not be read."""

    oks: Stream[Any]
    dead: Stream[DeadLetter]


def _decoder(
    serdes: dict[str, RecordSerde[dict[str, Any]]], convert: Convert
) -> Callable[[KafkaSourceMessage | KafkaError], Any]:
    def decode(msg: KafkaSourceMessage | KafkaError) -> Any:
        if isinstance(msg, KafkaError):
            # a consumer error on one partition (broker restarting, ...): librdkafka retries by itself
            log.warning("kafka source %s[%s]: %s", msg.msg.topic, msg.msg.partition, msg.err)
            metrics.SOURCE_ERRORS_TOTAL.labels(msg.msg.topic or "").inc()
            return None
        try:
            record = convert(serdes[msg.topic or ""].decode(msg.value), msg.timestamp[1] if msg.timestamp else 0)
            reason = record if isinstance(record, str) else None
            kind = "invalid"
        except DecodeError as e:
            reason, kind = e.message, e.kind
        if reason is None:
            return record
        metrics.INVALID_TOTAL.labels(msg.topic or "").inc()
        return DeadLetter(msg.topic or "", msg.partition or 0, msg.offset or 0, msg.key, msg.value, kind, reason,
                          int(time.time() * 1000))

    return decode


@operator
def kafka_records(
    step_id: str, flow: Dataflow, settings: Settings, serdes: dict[str, RecordSerde[dict[str, Any]]],
    convert: Convert, tail: bool = True,
) -> Records:
    """Every partition of the serdes' topics from the beginning (or the recovered offsets), decoded and converted."""
    topics = list(serdes)
    # a recovered offset that retention already deleted resumes at the oldest record still there
    # group.id: offsets are committed to the group named after the dataflow, for monitoring tools only
    config = {**_client_props(base_config(settings)), "auto.offset.reset": "earliest", "group.id": flow.flow_id}
    source = CommittingKafkaSource(_brokers(settings), topics, tail=tail, add_config=config, raise_on_errors=False)
    decoded = op.filter_map("decode", op.input("kafka", flow, source), _decoder(serdes, convert))
    split = op.branch("ok", decoded, lambda r: not isinstance(r, DeadLetter))
    return Records(split.trues, split.falses)


@operator
def join_keys(
    step_id: str, predictions: Stream[Scored], labels: Stream[Label], config: EvaluationConfig
) -> Stream[Evaluation]:
    """Predictions joined with labels by the pipeline's key, whichever comes first; expired sides reported."""
    both: Stream[Scored | Label] = op.merge("both", predictions, labels)
    sharded = op.key_on("shard", both, lambda r: shard_of(r.key, config.join_shards))
    joined = op.stateful("join", sharded, lambda resume: KeyJoin(config.join_timeout_ms, resume))
    outcomes = op.key_rm("unshard", joined)
    op.inspect("count", outcomes, lambda _step, e: metrics.record_outcome(e))
    return outcomes


@operator
def score_windows(
    step_id: str, outcomes: Stream[Evaluation], config: EvaluationConfig, task: str = REGRESSION,
    threshold: float = 0.5,
) -> Stream[ScoreWindow]:
    """The task's figures (count, MAE, RMSE, bias, p90; binary: log loss, AUC, ...) per model version per window."""
    evaluated = op.filter("evaluated", outcomes, lambda e: e.outcome == EVALUATED)
    spec = WindowSpec(config.window_ms, config.lateness_ms, config.retention_ms)

    def build(resume: Any) -> TumblingWindows:
        return TumblingWindows(spec, lambda e: e.observed_time, ErrorAccumulator(task, threshold),
                               emit_score_window, resume,
                               on_dropped=lambda _e: metrics.DROPPED_LATE_TOTAL.labels("scores").inc())

    windows = op.stateful_batch("windows", op.key_on("version", evaluated, score_key), build)
    scores = op.key_rm("unkey", windows)
    op.inspect("gauges", scores, lambda _step, w: metrics.record_score_window(w))
    return scores


@operator
def drift_alerts(
    step_id: str, events: Stream[Observation], labels: Stream[Observation], reference: Reference | References,
    seasonal: dict[str, int], config: EvaluationConfig,
) -> Stream[DriftAlert]:
    """PSI of each feature per window against the reference (the champion's when it swaps); an alert above the
    threshold names the reference it was measured against."""
    reference = reference.for_window(config.drift_window_ms, seasonal)
    # inputs are windowed by the event's time, the target by the label's time: two keys
    keyed = op.merge("both", op.key_on("inputs", events, lambda o: o.side),
                     op.key_on("target", labels, lambda o: o.side))
    spec = WindowSpec(config.drift_window_ms, config.lateness_ms, config.retention_ms)
    emit = readings(reference, config.drift_min_per_bin)

    def build(resume: Any) -> TumblingWindows:
        return TumblingWindows(spec, lambda o: o.time, DriftAccumulator(reference), emit, resume,
                               on_dropped=lambda _r: metrics.DROPPED_LATE_TOTAL.labels("drift").inc())

    found = op.key_rm("unkey", op.stateful_batch("windows", keyed, build))

    def to_alert(reading: DriftReading) -> DriftAlert | None:
        alert = alert_for(reading, config.psi_threshold)
        metrics.record_reading(reading, alerted=alert is not None)
        return alert

    return op.filter_map("alerts", found, to_alert)


@operator
def to_kafka(
    step_id: str, up: Stream[Any], settings: Settings, topic: str, record_name: str, key: Callable[[Any], str]
) -> None:
    """Encode ``up`` as ``record_name`` values and produce it to ``topic`` (idempotent producer, all acks)."""
    serde = topic_serdes(settings).for_topic(topic)
    messages = op.map("encode", up, lambda r: KafkaSinkMessage(key(r).encode(), serde.encode(r)))
    sink = KafkaSink(_brokers(settings), topic, add_config=_client_props(producer_config(settings)))
    op.output("kafka", messages, sink)
