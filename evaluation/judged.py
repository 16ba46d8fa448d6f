"""What the evaluation of one pipeline reads: its predictions, its labels and its input events, as dicts.

* Predictions (champion and shadow topics) are read with a projection of the prediction record:
  the key, the judged field (``labels.prediction``, by default the model's first output) and the
  lineage. The writer schemas are the prediction records of every model signature on the model
  topic (single-object encoding names its writer by fingerprint; with a schema registry the writer
  comes by id instead). The taxi pipeline's own ``Prediction.avsc`` is always known.
* Labels are read with the declared label schema: key ``labels.key``, value ``labels.field``, time
  ``labels.time`` (or the message's Kafka timestamp).
* Input events (for drift) are read with the declared input schema.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edml.evaluation.join import Label, Scored
from edml.schemas.records import ModelSignature
from edml.schemas.serde import AvroSerde, DecodeError, serde_for
from edml.schemas.wire import RecordSerde, topic_serdes

from edml.core.config import Settings
from edml.pipelines.bound import BoundPipeline
from edml.pipelines.declaration import DEFAULT_PIPELINE, PipelineError
from edml.pipelines.figures import label_value
from edml.pipelines.predictions import output_fields, prediction_schema

log = logging.getLogger("edml.evaluation")
_LINEAGE_NAMES = ("model_name", "model_version", "event_time", "role")


def _projection(writer: dict[str, Any], key: str, judged: str) -> dict[str, Any]:
    """The reader schema: the key, the judged field and the lineage the join needs, typed as in ``writer``."""
    by_name = {f["name"]: f for f in writer["fields"]}
    missing = [n for n in (key, judged, *_LINEAGE_NAMES) if n not in by_name]
    if missing:
        raise ValueError(f"the prediction record has no field {missing[0]}")
    fields = [{k: v for k, v in by_name[n].items() if k != "doc"} for n in (key, judged, *_LINEAGE_NAMES)]
    out = {"type": "record", "name": writer["name"], "fields": fields}
    if "namespace" in writer:
        out["namespace"] = writer["namespace"]
    return out


@dataclass(frozen=True)
class JudgedPipeline:
    """The fields and schemas the evaluation of one pipeline reads."""

    name: str
    key: str  # the key field of events and predictions
    event_time: str  # the input record's event-time field
    prediction: str  # the judged prediction field
    label_key: str
    label_field: str
    label_time: str  # empty: the label message's Kafka timestamp
    task: str
    threshold: float
    prediction_reader: dict[str, Any]
    prediction_writers: tuple[dict[str, Any], ...]
    label_schema: dict[str, Any]
    input_schema: dict[str, Any]

    def prediction_serde(self, settings: Settings, topic: str,
                         refresh: Callable[[], list[dict[str, Any]]] | None = None) -> RecordSerde[dict[str, Any]]:
        """The serde that reads ``topic``'s predictions as projected dicts (every known writer).

        Single-object encoding names its writer by fingerprint: a model published after the start
        with another signature writes predictions of a schema not known yet. ``refresh`` (the writer
        schemas of the model topic now) is then asked, at most once a minute, before such a
        prediction is dead-lettered.
        """
        serde = topic_serdes(settings).for_schema(topic, self.prediction_reader)
        if not isinstance(serde, AvroSerde):  # a registry names the writer by id: nothing to learn
            return serde
        for writer in self.prediction_writers:
            serde.add_writer_schema(writer)
        return serde if refresh is None else LearningSerde(serde, refresh)

    def label_serde(self, settings: Settings) -> RecordSerde[dict[str, Any]]:
        """The serde of the label topic's records (dicts)."""
        return topic_serdes(settings).for_schema(settings.topics.labels, self.label_schema)

    def input_serde(self, settings: Settings) -> RecordSerde[dict[str, Any]]:
        """The serde of the input topic's events (dicts)."""
        return topic_serdes(settings).for_schema(settings.topics.trips, self.input_schema)

    def scored(self, p: dict[str, Any]) -> Scored | str:
        """The prediction as the join takes it, or why it cannot be evaluated."""
        key, value = p.get(self.key), p.get(self.prediction)
        if key is None or str(key) == "":
            return f"{self.key} is empty"
        if not p.get("model_version"):
            return "model_version is empty"
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            return f"{self.prediction} is {value!r}, not a finite number"
        return Scored(str(key), p["model_name"], p["model_version"], p.get("role") or "champion",
                      int(p["event_time"]), float(value))

    def label(self, record: dict[str, Any], timestamp_ms: int) -> Label | str:
        """The label as the join takes it, or why it cannot be evaluated against."""
        key = record.get(self.label_key)
        if key is None or str(key) == "":
            return f"{self.label_key} is empty"
        try:
            actual = label_value(record.get(self.label_field))
        except ValueError as e:
            return f"{self.label_field} {e}"
        if not math.isfinite(actual):
            return f"{self.label_field} is {actual}, not a finite number"
        if self.task == "binary" and actual not in (0.0, 1.0):
            return f"{self.label_field} {actual:g} is not a binary label (0 or 1)"
        time = record.get(self.label_time) if self.label_time else timestamp_ms
        if not isinstance(time, int):
            return f"{self.label_time} is {time!r}, not a time in milliseconds"
        return Label(str(key), actual, time)


class LearningSerde:
    """A single-object serde of predictions that learns the writer schemas of models published later."""

    REFRESH_EVERY_S = 60.0

    def __init__(self, serde: AvroSerde[dict[str, Any]], refresh: Callable[[], list[dict[str, Any]]]) -> None:
        self.serde, self.refresh = serde, refresh
        self.record_type, self.schema_json, self.fingerprint = serde.record_type, serde.schema_json, serde.fingerprint
        self._refreshed_at = -math.inf

    def decode(self, payload: bytes | None) -> dict[str, Any]:
        """The prediction in ``payload``; an unknown writer is looked up on the model topic once a minute."""
        try:
            return self.serde.decode(payload)
        except DecodeError as e:
            if e.kind != "unknown-fingerprint" or time.monotonic() - self._refreshed_at < self.REFRESH_EVERY_S:
                raise
        self._refreshed_at = time.monotonic()
        for writer in self.refresh():
            self.serde.add_writer_schema(writer)
        return self.serde.decode(payload)

    def encode(self, record: dict[str, Any]) -> bytes:
        """Single-object encoding (of the projection)."""
        return self.serde.encode(record)

    def encode_columns(self, columns: dict[str, Any], n: int) -> list[bytes]:
        """Single-object encodings of ``n`` projected records given by column."""
        return self.serde.encode_columns(columns, n)

    def own_header(self) -> bytes:
        """The projection's single-object header."""
        return self.serde.own_header()


def prediction_writers(bound: BoundPipeline, signatures: list[ModelSignature]) -> list[dict[str, Any]]:
    """The prediction schemas the models of ``bound`` with ``signatures`` write (the taxi's own record first)."""
    pipeline = bound.pipeline
    writers: list[dict[str, Any]] = []
    if pipeline.name == DEFAULT_PIPELINE:
        writers.append(serde_for("Prediction").schema_json)
    for signature in signatures:
        try:
            schema = prediction_schema(pipeline, bound.key, signature)
        except PipelineError as e:  # a model this pipeline cannot serve wrote no predictions
            log.warning("skipping a model signature: %s", e)
            continue
        if schema not in writers:
            writers.append(schema)
    return writers


def judged_pipeline(bound: BoundPipeline, signatures: list[ModelSignature]) -> JudgedPipeline:
    """What the evaluation of ``bound`` reads, given the signatures of its models (from the model topic).

    Raises ``PipelineError`` (exit 2) for a pipeline without ``[labels]`` or whose predictions
    cannot be read.
    """
    pipeline = bound.pipeline
    labels = pipeline.labels
    if labels is None or bound.label_schema is None:
        raise pipeline.error("declares no [labels]: there is nothing to evaluate against; add a [labels] table")
    writers = prediction_writers(bound, signatures)
    if not writers:
        raise pipeline.error(f"no model of {', '.join(pipeline.models)} is on the model topic: its predictions "
                             "cannot be read yet; publish a model first")
    judged = labels.prediction
    if not judged:
        first = next((s for s in signatures if s.outputs), None)
        judged = output_fields(pipeline, first)[0][0] if first else writers[0]["fields"][1]["name"]
    try:
        reader = _projection(writers[-1], pipeline.input.key, judged)
    except ValueError as e:
        raise pipeline.error(f"labels.prediction: {e}") from None
    return JudgedPipeline(
        name=pipeline.name, key=pipeline.input.key, event_time=pipeline.input.event_time, prediction=judged,
        label_key=labels.key, label_field=labels.field, label_time=labels.time, task=labels.task,
        threshold=labels.threshold, prediction_reader=reader, prediction_writers=tuple(writers),
        label_schema=bound.label_schema, input_schema=bound.schema,
    )


def model_signatures(settings: Settings, model_names: tuple[str, ...]) -> list[ModelSignature]:
    """The signature of every record of ``model_names`` still on the model topic, oldest first."""
    from edml.model_topic.history import model_topic_entries

    return [e.record.signature for e in model_topic_entries(settings)
            if e.record is not None and e.model_name in model_names]
