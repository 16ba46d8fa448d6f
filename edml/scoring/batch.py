"""Score a batch of valid trips with the serving set and encode the outgoing messages."""

from __future__ import annotations

import gc
import logging
import time

import numpy as np

from edml.core import metrics
from edml.core.config import Topics
from edml.kafka.messages import OutgoingMessage
from edml.schemas.serde import dead_letter_serde, prediction_serde
from edml.schemas.validation import TripBatch
from edml.scoring.reemission import EmittedPredictions
from edml.scoring.serving import ActiveModels, LoadedModel

log = logging.getLogger("edml.scorer")


class BatchScorer:
    """Turns a TripBatch into prediction messages: one model call per batch and model.

    Champion predictions go to the predictions topic; challenger predictions go to the
    shadow-predictions topic only. ``per_event=True`` calls the model once per trip: it exists
    to measure what batching saves, not to serve. ``event_clock=True`` (replay) stamps each
    prediction with its trip's own Kafka timestamp as ``scored_at`` and a latency of 0 instead
    of the wall clock, so the output depends on the input alone. With ``emitted``, trips scored
    again after a restart get the bytes of their first predictions.
    """

    def __init__(self, active: ActiveModels, topics: Topics, per_event: bool = False,
                 wait_for_model_s: float | None = None, event_clock: bool = False,
                 emitted: EmittedPredictions | None = None) -> None:
        self.active = active
        self.topics = topics
        self.emitted = emitted
        self.per_event = per_event
        self.event_clock = event_clock
        self.wait_for_model_s = wait_for_model_s
        self._prediction_serde = prediction_serde()
        self._dead_letter_serde = dead_letter_serde()
        self._heap_frozen_for: object | None = None

    def _freeze_heap(self, serving: object) -> None:
        """Take what is alive now (TensorFlow, the models) out of the cyclic GC's full collections.

        With TensorFlow and a SavedModel loaded a process holds ~330k tracked objects, and a
        full collection, which the per-batch garbage triggers every few seconds, walks them all:
        a 200 ms stall that every trip in flight waits for (the p95/p99 latency). Frozen objects
        are skipped. On a later model change the heap is collected once (a stall of that size,
        freeing the old model) and frozen again.
        """
        if serving is self._heap_frozen_for:
            return
        if self._heap_frozen_for is not None:  # the first time there is no old model to free
            gc.unfreeze()
            gc.collect()
        gc.freeze()
        self._heap_frozen_for = serving

    def dead_letters(self, batch: TripBatch) -> list[OutgoingMessage]:
        """The batch's dead letters, encoded for the dead-letter topic."""
        out = []
        for dl in batch.dead_letters:
            metrics.DEAD_LETTERS.labels(dl.error_kind).inc()
            out.append(OutgoingMessage(self.topics.dead_letter, dl.key, self._dead_letter_serde.encode(dl)))
        return out

    def _predict(self, model: LoadedModel, batch: TripBatch) -> np.ndarray:
        started = time.perf_counter()
        if self.per_event:
            values = np.concatenate([model.predict([t]) for t in batch.trips])
        else:
            values = model.predict_columns(batch.columns.as_dict())
        metrics.MODEL_CALL.observe(time.perf_counter() - started)
        return values

    def score(self, batch: TripBatch) -> list[OutgoingMessage]:
        """Predictions for every trip of the batch, by the champion and each challenger."""
        if not len(batch):
            return []
        serving = self.active.current
        if serving is None:
            # A tombstone arrived after the source let this batch through: wait for a model
            # rather than drop the events (they are not yet covered by a snapshot).
            log.warning("no model active for a batch of %d trips; waiting for one", len(batch))
            serving = self.active.wait_ready(self.wait_for_model_s)
            if serving is None:
                raise RuntimeError("no model became active in time; restart resumes from the last snapshot")
        self._freeze_heap(serving)
        out = self._encode(serving.champion, batch, self._predict(serving.champion, batch),
                           self.topics.predictions, "champion")
        for challenger in serving.challengers:
            out += self._encode(challenger, batch, self._predict(challenger, batch),
                                self.topics.shadow_predictions, "challenger")
        if self.emitted is not None:
            self.emitted.reuse(batch, out)
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.SCORING_LATENCY.observe(max(0.0, time.time() - min(batch.timestamps_ms) / 1000))
        return out

    def _encode(self, model: LoadedModel, batch: TripBatch, values: np.ndarray, topic: str,
                role: str) -> list[OutgoingMessage]:
        # column by column for the whole batch: per-record Prediction objects and fastavro calls
        # were the largest cost of the hot path
        columns = batch.columns
        n = len(columns)
        trip_ids = columns.trip_id
        ts = np.fromiter(batch.timestamps_ms, dtype=np.int64, count=n)
        scored_at = ts if self.event_clock else int(time.time() * 1000)
        encoded = self._prediction_serde.encode_columns({
            "trip_id": trip_ids, "predicted_duration_s": np.asarray(values, dtype=np.float64),
            "model_name": model.name, "model_version": model.version,
            "event_time": columns.pickup_time,
            "scored_at": scored_at, "latency_ms": (scored_at - ts).astype(np.float64), "role": role,
        }, n)
        out = [OutgoingMessage(topic, tid.encode(), v) for tid, v in zip(trip_ids, encoded, strict=True)]
        metrics.PREDICTIONS_OUT.labels(role).inc(len(out))
        return out
