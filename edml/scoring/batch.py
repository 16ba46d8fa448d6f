"""The steps of the scoring dataflow: score a batch per model, encode predictions and dead letters.

Each step is one job, named as in ``dataflows/scoring.py``:

* :class:`BatchScorer` -- one model call per batch and model; a call that fails (raises, or
  returns an output that is not one float per row) is retried by halves to isolate the rows
  that fail, a non-finite value fails its row only; failing rows become dead letters
  (``model-error`` / ``model-output``), the rest is scored. A model whose failures pass the
  declared rate over a window of rows is reported faulty to the serving set (quarantine).
* :class:`PredictionEncoder` -- prediction messages with an injected clock: the wall clock
  live, the trip's own Kafka timestamp in replay (:func:`event_clock`).
* :class:`DeadLetterEncoder` -- decode, validation and model dead letters for the dead-letter topic.
* :class:`FirstBytes` -- trips scored again after a restart get the bytes of their first predictions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edml.core import metrics
from edml.core.config import Settings
from edml.kafka.messages import OutgoingMessage
from edml.model_topic.gate import CheckedOutput
from edml.schemas.records import DeadLetter
from edml.schemas.validation import TripBatch
from edml.schemas.wire import TopicSerdes
from edml.scoring.reemission import SOURCE_HEADER, EmittedPredictions, source_positions
from edml.scoring.serving import ActiveModels, LoadedModel, ServingSet

log = logging.getLogger("edml.scorer")

# (model, columns of the rows) -> the checked output; the default is one call for all rows
ModelCall = Callable[[LoadedModel, dict[str, Any]], CheckedOutput]
# Kafka timestamps (ms) of a batch's trips -> scored_at (ms): one value or one per trip
Clock = Callable[[np.ndarray], "np.ndarray | int"]


def call_batch(model: LoadedModel, columns: dict[str, Any]) -> CheckedOutput:
    """One model call for every row of ``columns``."""
    return model.call(columns)


def wall_clock(timestamps_ms: np.ndarray) -> int:
    """Live scoring: the time of scoring."""
    return int(time.time() * 1000)


def event_clock(timestamps_ms: np.ndarray) -> np.ndarray:
    """Replay: each trip's own Kafka timestamp, so the output depends on the input alone."""
    return timestamps_ms


@dataclass(frozen=True)
class FaultPolicy:
    """When a model's failures make it faulty: more than ``rate`` of the last ``window_rows`` rows failed."""

    rate: float = 0.05
    window_rows: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> FaultPolicy:
        """The policy the settings declare."""
        return cls(rate=settings.model_failure_rate, window_rows=settings.model_failure_window)


class FailureWindow:
    """Rows scored and rows failed by one model over its last ``window_rows`` rows."""

    def __init__(self, policy: FaultPolicy) -> None:
        self.policy = policy
        self._batches: deque[tuple[int, int]] = deque()
        self.rows = 0
        self.failed = 0

    def add(self, rows: int, failed: int) -> bool:
        """Count one batch; True when the failures now pass the policy's rate."""
        self._batches.append((rows, failed))
        self.rows += rows
        self.failed += failed
        while self._batches and self.rows - self._batches[0][0] >= self.policy.window_rows:
            old_rows, old_failed = self._batches.popleft()
            self.rows -= old_rows
            self.failed -= old_failed
        # more failures than the rate allows over a whole window: no later success can undo it
        return self.failed > self.policy.rate * self.policy.window_rows


@dataclass(frozen=True)
class RowFailure:
    """Rows of a batch a model could not score, and why."""

    rows: np.ndarray  # indices into the batch
    kind: str  # model-error (the call raised) or model-output (unusable output)
    reason: str


@dataclass
class ScoredRows:
    """One model's outputs for a batch: ``values`` where ``ok``, and the failures."""

    model: LoadedModel
    role: str  # champion or challenger
    values: np.ndarray
    ok: np.ndarray  # bool per row
    failures: list[RowFailure] = field(default_factory=list)
    calls: int = 0


@dataclass
class ScoredBatch:
    """A batch and what each serving model made of it."""

    batch: TripBatch
    scored: list[ScoredRows] = field(default_factory=list)


def _take(column: Any, rows: np.ndarray) -> Any:
    return column[rows] if isinstance(column, np.ndarray) else [column[i] for i in rows.tolist()]


# lines of a TensorFlow error that say where, not what
_ERROR_FRAMING = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "File ", "[[")


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    what = [line for line in lines if not line.startswith(_ERROR_FRAMING)]
    return (what or lines or [""])[0][:200]


def score_rows(model: LoadedModel, role: str, columns: dict[str, Any], n: int,
               call: ModelCall = call_batch) -> ScoredRows:
    """Score ``n`` rows with one call; on failure retry by halves until the failing rows are isolated.

    Any exception and any unusable output (wrong length, shape or dtype) fails the call; a
    non-finite value fails its own row. A lone row that still fails is a failure.
    """
    inputs = {b.name: columns[b.name] for b in model.bindings}
    out = ScoredRows(model, role, np.zeros(n, dtype=np.float64), np.zeros(n, dtype=bool))
    pending = [np.arange(n)]
    while pending:
        rows = pending.pop()
        part = inputs if len(rows) == n else {k: _take(v, rows) for k, v in inputs.items()}
        out.calls += 1
        started = time.perf_counter()
        try:
            checked = call(model, part)
        except Exception as e:  # any error of the model call is the model's: isolate it, never crash
            kind, reason = "model-error", f"{type(e).__name__}: {_first_line(e)}"
        else:
            if checked.problem is None:
                out.values[rows] = checked.values
                out.ok[rows] = True
                if len(checked.nonfinite):
                    bad = rows[checked.nonfinite]
                    out.ok[bad] = False
                    out.failures.append(RowFailure(bad, "model-output", "non-finite (NaN/inf) output"))
                metrics.MODEL_CALL.observe(time.perf_counter() - started)
                continue
            kind, reason = "model-output", checked.problem
        if len(rows) == 1:
            out.failures.append(RowFailure(rows, kind, reason))
        else:
            half = len(rows) // 2
            pending += [rows[half:], rows[:half]]
    return out


class BatchScorer:
    """Scores a TripBatch: one call per batch for the champion and for each challenger.

    Challengers are scored apart from the champion: their failures never touch the champion's
    predictions and never make dead letters (only metrics and, past the rate, quarantine).
    ``call`` is how a model is called on rows (benchmarks swap in a per-event call).
    """

    def __init__(self, active: ActiveModels, faults: FaultPolicy | None = None,
                 wait_for_model_s: float | None = None, call: ModelCall = call_batch) -> None:
        self.active = active
        self.faults = faults or FaultPolicy()
        self.wait_for_model_s = wait_for_model_s
        self.call = call
        self._windows: dict[tuple[str, str, str], FailureWindow] = {}
        self._lock = threading.Lock()  # worker threads share the scorer

    def _serving(self, n: int) -> ServingSet:
        serving = self.active.current
        if serving is None:
            # A tombstone arrived after the source let this batch through: wait for a model
            # rather than drop the events (they are not yet covered by a snapshot).
            log.warning("no model active for a batch of %d trips; waiting for one", n)
            serving = self.active.wait_ready(self.wait_for_model_s)
            if serving is None:
                raise RuntimeError("no model became active in time; restart resumes from the last snapshot")
        return serving

    def score(self, batch: TripBatch) -> ScoredBatch:
        """Every serving model's outputs for the batch, failing rows isolated."""
        n = len(batch)
        if not n:
            return ScoredBatch(batch)
        serving = self._serving(n)
        columns = batch.columns.as_dict()
        out = ScoredBatch(batch)
        for model, role in ((serving.champion, "champion"), *((c, "challenger") for c in serving.challengers)):
            rows = score_rows(model, role, columns, n, self.call)
            out.scored.append(rows)
            self._count(rows, n)
        metrics.BATCH_SIZE.observe(n)
        return out

    def _count(self, rows: ScoredRows, n: int) -> None:
        failed = int(n - np.count_nonzero(rows.ok))
        model = rows.model
        for failure in rows.failures:
            metrics.MODEL_FAILURES.labels(rows.role, failure.kind).inc(len(failure.rows))
            log.warning("%s %s %s failed on %d of %d rows (%s): %s", rows.role, model.name, model.version,
                        len(failure.rows), n, failure.kind, failure.reason)
        key = (model.name, model.version, model.record.sha256)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                if not failed:
                    return
                window = self._windows[key] = FailureWindow(self.faults)
            faulty = window.add(n, failed)
            if faulty:
                del self._windows[key]
        if faulty:
            self.active.report_faulty(model, f"{window.failed} of its last {window.rows} rows failed "
                                             f"(limit {self.faults.rate:.1%} of {self.faults.window_rows}); "
                                             f"last: {rows.failures[-1].kind if rows.failures else '-'} "
                                             f"{rows.failures[-1].reason if rows.failures else ''}")


class PredictionEncoder:
    """Prediction messages of a scored batch: champion to predictions, challengers to shadow-predictions."""

    def __init__(self, serdes: TopicSerdes, clock: Clock = wall_clock, stamp_positions: bool = False) -> None:
        self.topics = serdes.topics
        self.serdes = serdes
        self.clock = clock
        # the source position header is what re-emission after a restart matches: only with recovery
        self.stamp_positions = stamp_positions

    def encode(self, scored: ScoredBatch) -> tuple[TripBatch, list[OutgoingMessage]]:
        """(the source batch, its prediction messages, each stamped with its trip's source position)."""
        batch = scored.batch
        out: list[OutgoingMessage] = []
        if scored.scored:
            ts = np.fromiter(batch.timestamps_ms, dtype=np.int64, count=len(batch))
            positions = source_positions(batch) if self.stamp_positions else None
            for rows in scored.scored:
                topic = self.topics.predictions if rows.role == "champion" else self.topics.shadow_predictions
                out += self._encode(rows, batch, ts, topic, positions)
            metrics.SCORING_LATENCY.observe(max(0.0, time.time() - min(batch.timestamps_ms) / 1000))
        return batch, out

    def _encode(self, rows: ScoredRows, batch: TripBatch, ts: np.ndarray, topic: str,
                positions: list[bytes] | None) -> list[OutgoingMessage]:
        # column by column for the whole batch: per-record Prediction objects and fastavro calls
        # were the largest cost of the hot path
        columns = batch.columns
        trip_ids, event_time, values = columns.trip_id, columns.pickup_time, rows.values
        if not rows.ok.all():
            keep = np.flatnonzero(rows.ok)
            trip_ids, event_time, values, ts = _take(trip_ids, keep), event_time[keep], values[keep], ts[keep]
            positions = None if positions is None else _take(positions, keep)
        n = len(trip_ids)
        if not n:
            return []
        scored_at = self.clock(ts)
        encoded = self.serdes.for_topic(topic).encode_columns({
            "trip_id": trip_ids, "predicted_duration_s": values,
            "model_name": rows.model.name, "model_version": rows.model.version, "event_time": event_time,
            "scored_at": scored_at, "latency_ms": (scored_at - ts).astype(np.float64), "role": rows.role,
        }, n)
        if positions is None:
            out = [OutgoingMessage(topic, tid.encode(), v) for tid, v in zip(trip_ids, encoded, strict=True)]
        else:  # the position matches a re-emitted prediction to its first one (edml.scoring.reemission)
            out = [OutgoingMessage(topic, tid.encode(), v, [(SOURCE_HEADER, pos)])
                   for tid, v, pos in zip(trip_ids, encoded, positions, strict=True)]
        metrics.PREDICTIONS_OUT.labels(rows.role).inc(len(out))
        return out


class DeadLetterEncoder:
    """Dead letters of a scored batch: events that did not decode or validate, and rows the champion failed."""

    def __init__(self, serdes: TopicSerdes) -> None:
        self.topics = serdes.topics
        self._serde = serdes.dead_letter
        self._trip_serde = serdes.trips

    def encode(self, scored: ScoredBatch) -> list[OutgoingMessage]:
        """The messages for the dead-letter topic."""
        letters = list(scored.batch.dead_letters)
        for rows in scored.scored:
            if rows.role == "champion" and rows.failures:
                letters += self._model_failures(scored.batch, rows)
        out = []
        for dl in letters:
            metrics.DEAD_LETTERS.labels(dl.error_kind).inc()
            out.append(OutgoingMessage(self.topics.dead_letter, dl.key, self._serde.encode(dl)))
        return out

    def _model_failures(self, batch: TripBatch, rows: ScoredRows) -> list[DeadLetter]:
        # the trip is re-encoded (the same bytes for single-object trips), keyed by its id, with
        # its source position, so it can be sent again once a model serves
        trips = batch.trips
        topic, partition = (batch.last_message[0], batch.last_message[1]) if batch.last_message \
            else (self.topics.trips, -1)
        offsets = batch.offsets if len(batch.offsets) == len(trips) else None
        now = int(time.time() * 1000)
        model = rows.model
        return [
            DeadLetter(source_topic=topic, partition=partition, offset=-1 if offsets is None else offsets[i],
                       key=trips[i].trip_id.encode(), value=self._trip_serde.encode(trips[i]),
                       error_kind=failure.kind, message=f"{model.name} {model.version}: {failure.reason}", time=now)
            for failure in rows.failures for i in failure.rows.tolist()
        ]


class FirstBytes:
    """Trips scored again after a restart get the bytes of their first predictions (None: as encoded)."""

    def __init__(self, emitted: EmittedPredictions | None = None) -> None:
        self.emitted = emitted

    def reuse(self, encoded: tuple[TripBatch, list[OutgoingMessage]]) -> list[OutgoingMessage]:
        """The prediction messages, with first-emission bytes where a trip was emitted before."""
        batch, messages = encoded
        if self.emitted is not None and messages:
            self.emitted.reuse(batch, messages)
        return messages


@dataclass(frozen=True)
class ScoringSteps:
    """The functions the scoring dataflow is built from, one job each."""

    scorer: BatchScorer
    predictions: PredictionEncoder
    dead_letters: DeadLetterEncoder
    first_bytes: FirstBytes
    serdes: TopicSerdes


def scoring_steps(active: ActiveModels, serdes: TopicSerdes, *, clock: Clock = wall_clock,
                  emitted: EmittedPredictions | None = None, faults: FaultPolicy | None = None,
                  call: ModelCall = call_batch, wait_for_model_s: float | None = None) -> ScoringSteps:
    """The steps of one scoring dataflow over ``active``, encoding with ``serdes`` (the wire format of the settings)."""
    predictions = PredictionEncoder(serdes, clock, stamp_positions=emitted is not None)
    return ScoringSteps(BatchScorer(active, faults, wait_for_model_s, call), predictions, DeadLetterEncoder(serdes),
                        FirstBytes(emitted), serdes)
