"""The steps of the scoring dataflow: score a batch per model, encode predictions and dead letters.

Each step is one job, named as in ``dataflows/scoring.py``:

* :class:`~edml.pipelines.events.EventDecoder` -- the pipeline's events as columns, checked
  against its declared constraints.
* :class:`BatchScorer` -- one model call per batch and model; rows outside a model's inferred
  constraints are not given to it (``out-of-range``); a call that fails (raises, or returns
  outputs that do not fit the signature) is retried by halves to isolate the rows that fail, a
  non-finite value fails its row only; failing rows become dead letters (``model-error`` /
  ``model-output``), the rest is scored. A model whose failures pass the declared rate over a
  window of rows is reported faulty to the serving set (quarantine). Its injected clock stamps
  ``scored_at``: the wall clock live, the event's own Kafka timestamp in replay (:func:`event_clock`).
* :class:`PredictionEncoder` -- prediction records derived from each model's signature.
* :class:`AlertEncoder` -- a copy of each champion prediction a declared alert rule fires on.
* :class:`DeadLetterEncoder` -- decode, constraint and model dead letters, with each event's source bytes.
* :class:`FirstBytes` -- events scored again after a restart get the bytes of their first predictions.
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
from edml.pipelines.alerts import alert_schema, matches
from edml.pipelines.bound import BoundPipeline
from edml.pipelines.constraints import check_columns
from edml.pipelines.events import EventBatch, EventDecoder
from edml.schemas.records import DeadLetter, TensorSpec
from edml.schemas.wire import RecordSerde, TopicSerdes
from edml.scoring.reemission import SOURCE_HEADER, EmittedPredictions, source_positions
from edml.scoring.serving import ActiveModels, LoadedModel, ServingSet

log = logging.getLogger("edml.scorer")

# (model, columns of the rows) -> the checked output; the default is one call for all rows
ModelCall = Callable[[LoadedModel, dict[str, Any]], CheckedOutput]
# Kafka timestamps (ms) of a batch's events -> scored_at (ms): one value or one per event
Clock = Callable[[np.ndarray], "np.ndarray | int"]


def call_batch(model: LoadedModel, columns: dict[str, Any]) -> CheckedOutput:
    """One model call for every row of ``columns``."""
    return model.call(columns)


def wall_clock(timestamps_ms: np.ndarray) -> int:
    """Live scoring: the time of scoring."""
    return int(time.time() * 1000)


def event_clock(timestamps_ms: np.ndarray) -> np.ndarray:
    """Replay: each event's own Kafka timestamp, so the output depends on the input alone."""
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
    kind: str  # model-error (the call raised), model-output (unusable output), out-of-range (inferred constraint)
    reason: str


_EMPTY_DTYPES = {"f": np.float64, "i": np.int64, "u": np.int64, "b": np.bool_}


def _empty_output(spec: TensorSpec, n: int) -> np.ndarray:
    width = spec.shape[1] if len(spec.shape) == 2 and spec.shape[1] > 0 else 1
    kind = np.dtype(spec.dtype).kind if spec.dtype != "string" else "O"
    dtype = _EMPTY_DTYPES.get(kind, object)
    return np.zeros(n if width == 1 else (n, width), dtype=dtype)


@dataclass
class ScoredRows:
    """One model's outputs for a batch (output name -> values) where ``ok``, and the failures."""

    model: LoadedModel
    role: str  # champion or challenger
    values: dict[str, np.ndarray]
    ok: np.ndarray  # bool per row
    failures: list[RowFailure] = field(default_factory=list)
    rejected: list[RowFailure] = field(default_factory=list)  # rows outside the model's inferred constraints
    calls: int = 0
    # routed pipelines: the batch rows these rows are (None: the whole batch, in order), why a fallback
    # scored each row, and an ensemble's members (name@version)
    index: np.ndarray | None = None
    reasons: np.ndarray | None = None
    members: list[str] | None = None

    @property
    def primary(self) -> bool:
        """Whether these predictions go to the predictions topic (champion, fallback), not the shadow topic."""
        return self.role in PRIMARY_ROLES


# roles whose predictions go to the predictions topic; the others (challenger, member) go to shadow-predictions
PRIMARY_ROLES = ("champion", "fallback")


@dataclass
class ScoredBatch:
    """A batch and what each serving model made of it."""

    batch: EventBatch
    scored: list[ScoredRows] = field(default_factory=list)
    scored_at: Any = 0  # ms, from the scorer's clock: one value for the batch, or one per event
    # rows no model could score (no-model, or a constraint no fallback escapes): batch row -> (kind, reason)
    unscored: list[tuple[np.ndarray, str, str]] = field(default_factory=list)


def _take(column: Any, rows: np.ndarray) -> Any:
    return column[rows] if isinstance(column, np.ndarray) else [column[i] for i in rows.tolist()]


# lines of a TensorFlow error that say where, not what
_ERROR_FRAMING = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "File ", "[[")


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    what = [line for line in lines if not line.startswith(_ERROR_FRAMING)]
    return (what or lines or [""])[0][:200]


def score_rows(model: LoadedModel, role: str, columns: dict[str, Any], n: int,
               call: ModelCall = call_batch, nulls: dict[str, np.ndarray] | None = None) -> ScoredRows:
    """Score ``n`` rows with one call; on failure retry by halves until the failing rows are isolated.

    Rows outside the model's inferred constraints are rejected first and never reach it. Any
    exception and any unusable output (missing, wrong length, shape or dtype) fails the call; a
    non-finite value fails its own row. A lone row that still fails is a failure.
    """
    inputs = {b.source: columns[b.source] for b in model.bindings}
    out = ScoredRows(model, role, {s.name: _empty_output(s, n) for s in model.outputs}, np.zeros(n, dtype=bool))
    first = np.arange(n)
    if model.constraints:
        violations = check_columns(columns, nulls or {}, model.constraints, n)
        out.rejected = [RowFailure(np.array([i]), "out-of-range", reason) for i, reason in violations.reasons.items()]
        first = np.flatnonzero(violations.ok)
    pending = [first] if len(first) else []
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
                for name, values in checked.values.items():
                    out.values[name][rows] = values
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
    """Scores an EventBatch: one call per batch for the champion and for each challenger.

    Challengers are scored apart from the champion: their failures never touch the champion's
    predictions and never make dead letters (only metrics and, past the rate, quarantine).
    ``call`` is how a model is called on rows (benchmarks swap in a per-event call).
    """

    def __init__(self, active: ActiveModels, faults: FaultPolicy | None = None,
                 wait_for_model_s: float | None = None, call: ModelCall = call_batch,
                 clock: Clock = wall_clock) -> None:
        self.active = active
        self.clock = clock
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
            log.warning("no model active for a batch of %d events; waiting for one", n)
            serving = self.active.wait_ready(self.wait_for_model_s)
            if serving is None:
                raise RuntimeError("no model became active in time; restart resumes from the last snapshot")
        return serving

    def score(self, batch: EventBatch) -> ScoredBatch:
        """Every serving model's outputs for the batch, failing rows isolated."""
        n = len(batch)
        if not n:
            return ScoredBatch(batch)
        serving = self._serving(n)
        out = ScoredBatch(batch)
        for model, role in ((serving.champion, "champion"), *((c, "challenger") for c in serving.challengers)):
            rows = score_rows(model, role, batch.columns, n, self.call, batch.nulls)
            out.scored.append(rows)
            self._count(rows, n)
        out.scored_at = self.clock(batch.timestamps_ms)
        metrics.BATCH_SIZE.observe(n)
        return out

    def _report_faulty(self, model: LoadedModel, reason: str) -> None:
        self.active.report_faulty(model, reason)

    def _count(self, rows: ScoredRows, n: int) -> None:
        # rows outside the model's inferred constraints are the data's fault, not the model's
        failed = sum(len(f.rows) for f in rows.failures)
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
            self._report_faulty(model, f"{window.failed} of its last {window.rows} rows failed "
                                             f"(limit {self.faults.rate:.1%} of {self.faults.window_rows}); "
                                             f"last: {rows.failures[-1].kind if rows.failures else '-'} "
                                             f"{rows.failures[-1].reason if rows.failures else ''}")


def key_bytes(values: Any) -> list[bytes]:
    """Message keys of a key column: text as UTF-8, bytes as they are, numbers in decimal."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    try:
        return [v.encode() for v in items]  # the common case: string keys
    except AttributeError:
        return [v if isinstance(v, bytes) else str(v).encode() for v in items]


class PredictionEncoder:
    """Prediction messages of a scored batch: champion to predictions, challengers to shadow-predictions.

    Each model writes the record its signature derives (``LoadedModel.prediction_schema``): the
    event's key, every output, and the lineage.
    """

    def __init__(self, serdes: TopicSerdes, bound: BoundPipeline, stamp_positions: bool = False) -> None:
        self.topics = serdes.topics
        self.serdes = serdes
        self.key = bound.pipeline.input.key
        self.event_time = bound.pipeline.input.event_time
        self._writers: dict[tuple[str, int], RecordSerde[dict[str, Any]]] = {}
        self._schemas: list[dict[str, Any]] = []
        # predictions of a pipeline with fallbacks or ensembles say why a fallback scored and which members combined
        self.routed_lineage = bool(bound.pipeline.fallbacks or bound.pipeline.ensembles)
        # the source position header is what re-emission after a restart matches: only with recovery
        self.stamp_positions = stamp_positions

    def encode(self, scored: ScoredBatch) -> tuple[EventBatch, list[OutgoingMessage]]:
        """(the source batch, its prediction messages, each stamped with its event's source position)."""
        batch = scored.batch
        out: list[OutgoingMessage] = []
        if scored.scored and len(batch):
            ts = batch.timestamps_ms
            positions = source_positions(batch) if self.stamp_positions else None
            primary: list[tuple[list[OutgoingMessage], np.ndarray | None]] = []
            for rows in scored.scored:
                if rows.primary:
                    primary.append(self._encode(rows, scored, self.topics.predictions, positions))
                else:
                    out += self._encode(rows, scored, self.topics.shadow_predictions, positions)[0]
            out = _in_source_order(primary) + out
            metrics.SCORING_LATENCY.observe(max(0.0, time.time() - int(ts.min()) / 1000))
        return batch, out

    def writer(self, topic: str, schema: dict[str, Any]) -> RecordSerde[dict[str, Any]]:
        """The serde writing ``schema``'s records to ``topic``; found by the schema object, not its text, per batch."""
        key = (topic, id(schema))
        found = self._writers.get(key)
        if found is None:
            # a model's schema lives as long as the model; keep it referenced so its id stays its own
            found = self._writers[key] = self.serdes.for_schema(topic, schema)
            self._schemas.append(schema)
        return found

    def columns(self, rows: ScoredRows, scored: ScoredBatch, keep: np.ndarray | None) -> tuple[dict[str, Any], int]:
        """The prediction columns of ``rows``' model for the batch rows ``keep`` (None: all), and their count."""
        batch = scored.batch
        keys, event_time, ts = batch.columns[self.key], batch.columns[self.event_time], batch.timestamps_ms
        values, scored_at = rows.values, scored.scored_at
        reasons = rows.reasons
        if rows.index is not None:  # a routed group: its rows of the batch
            keys, event_time, ts = keys[rows.index], event_time[rows.index], ts[rows.index]
            scored_at = scored_at[rows.index] if isinstance(scored_at, np.ndarray) else scored_at
        if keep is not None:
            reasons = reasons[keep] if reasons is not None else None
            keys, event_time, ts = keys[keep], event_time[keep], ts[keep]
            values = {name: v[keep] for name, v in values.items()}
            scored_at = scored_at[keep] if isinstance(scored_at, np.ndarray) else scored_at
        model = rows.model
        columns: dict[str, Any] = {self.key: keys}
        for field_name, output in model.output_fields:
            columns[field_name] = values[output]
        columns.update(model_name=model.name, model_version=model.version, event_time=event_time,
                       scored_at=scored_at, latency_ms=(scored_at - ts).astype(np.float64), role=rows.role)
        if self.routed_lineage:
            columns.update(fallback_reason=reasons, members=rows.members)
        return columns, len(keys)

    def _encode(self, rows: ScoredRows, scored: ScoredBatch, topic: str,
                positions: list[bytes] | None) -> tuple[list[OutgoingMessage], np.ndarray | None]:
        """The messages of ``rows`` and the batch row of each (None: the batch's rows in order)."""
        # column by column for the whole batch: per-record objects and fastavro calls were the
        # largest cost of the hot path
        keep = None
        where = rows.index
        if not rows.ok.all():
            keep = np.flatnonzero(rows.ok)
            where = keep if where is None else where[keep]
        if positions is not None and where is not None:
            positions = _take(positions, where)
        columns, n = self.columns(rows, scored, keep)
        if not n:
            return [], where
        encoded = self.writer(topic, rows.model.prediction_schema).encode_columns(columns, n)
        message_keys = key_bytes(columns[self.key])
        if positions is None:
            out = [OutgoingMessage(topic, k, v) for k, v in zip(message_keys, encoded, strict=True)]
        else:  # the position matches a re-emitted prediction to its first one (edml.scoring.reemission)
            out = [OutgoingMessage(topic, k, v, [(SOURCE_HEADER, pos)])
                   for k, v, pos in zip(message_keys, encoded, positions, strict=True)]
        metrics.PREDICTIONS_OUT.labels(rows.role).inc(len(out))
        if rows.index is not None:
            metrics.PREDICTIONS_BY_MODEL.labels(rows.model.name, rows.role).inc(len(out))
        return out, where


def _in_source_order(groups: list[tuple[list[OutgoingMessage], np.ndarray | None]]) -> list[OutgoingMessage]:
    """The messages of every group in their events' source order (one group: as it is)."""
    if len(groups) == 1:
        return groups[0][0]
    messages = [m for group, _ in groups for m in group]
    where = np.concatenate([w if w is not None else np.arange(len(g)) for g, w in groups]) if groups else None
    if where is None or not len(messages):
        return messages
    return [messages[i] for i in np.argsort(where, kind="stable").tolist()]


class AlertEncoder:
    """Alerts of a scored batch: a copy of each champion prediction an alert rule fires on, with the rule's name.

    The rules are checked on whole columns (inputs and outputs), one numpy comparison per
    condition; only the predictions that fire are encoded. Re-scored events after a restart may
    alert again (at least once, like every output).
    """

    def __init__(self, predictions: PredictionEncoder, bound: BoundPipeline) -> None:
        self.predictions = predictions
        self.rules = bound.pipeline.alerts
        self.pipeline = bound.name
        self.topic = predictions.topics.prediction_alerts
        # a model's prediction schema (by id, kept referenced) -> its alert schema: derived once per model
        self._alert_schemas: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

    def encode(self, scored: ScoredBatch) -> list[OutgoingMessage]:
        """The messages for the alert topic."""
        if not self.rules:
            return []
        out: list[OutgoingMessage] = []
        for rows in scored.scored:
            if rows.primary and rows.ok.any():
                out += self._encode(rows, scored)
        return out

    def _encode(self, champion: ScoredRows, scored: ScoredBatch) -> list[OutgoingMessage]:
        batch = scored.batch
        keep = np.flatnonzero(champion.ok)
        columns, n = self.predictions.columns(champion, scored, keep)
        where = keep if champion.index is None else champion.index[keep]
        fields = {**{k: v[where] for k, v in batch.columns.items()}, **columns}
        nulls = {k: v[where] for k, v in batch.nulls.items()}
        schema = champion.model.prediction_schema
        known = self._alert_schemas.get(id(schema))
        if known is None:
            known = self._alert_schemas[id(schema)] = (schema, alert_schema(schema))
        serde = self.predictions.writer(self.topic, known[1])
        out: list[OutgoingMessage] = []
        for rule in self.rules:
            fired = np.flatnonzero(matches(rule, fields, n, nulls))
            if not len(fired):
                continue
            chosen = {k: (v[fired] if isinstance(v, np.ndarray) else v) for k, v in columns.items()}
            chosen["rule"] = rule.name
            encoded = serde.encode_columns(chosen, len(fired))
            out += [OutgoingMessage(self.topic, k, v) for k, v in zip(key_bytes(chosen[self.predictions.key]),
                                                                       encoded, strict=True)]
            metrics.ALERTS.labels(self.pipeline, rule.name).inc(len(fired))
        return out


class DeadLetterEncoder:
    """Dead letters of a scored batch: events that did not decode or pass a constraint, and rows the champion failed."""

    def __init__(self, serdes: TopicSerdes) -> None:
        self.topics = serdes.topics
        self._serde = serdes.dead_letter

    def encode(self, scored: ScoredBatch) -> list[OutgoingMessage]:
        """The messages for the dead-letter topic."""
        letters = list(scored.batch.dead_letters)
        for rows in scored.scored:
            if rows.primary:
                letters += self._rows(scored.batch, rows, rows.rejected + rows.failures)
        for where, kind, reason in scored.unscored:
            letters += self._letters(scored.batch, where, kind, reason)
        out = []
        for dl in letters:
            metrics.DEAD_LETTERS.labels(dl.error_kind).inc()
            out.append(OutgoingMessage(self.topics.dead_letter, dl.key, self._serde.encode(dl)))
        return out

    def _rows(self, batch: EventBatch, rows: ScoredRows, failures: list[RowFailure]) -> list[DeadLetter]:
        model = rows.model
        return [letter for failure in failures for letter in self._letters(
            batch, failure.rows if rows.index is None else rows.index[failure.rows], failure.kind,
            f"{model.name} {model.version}: {failure.reason}")]

    def _letters(self, batch: EventBatch, where: np.ndarray, kind: str, reason: str) -> list[DeadLetter]:
        # the event's own bytes and source position, so it can be sent again once a model serves it
        topic, partition = (batch.last_message[0], batch.last_message[1]) if batch.last_message \
            else (self.topics.trips, -1)
        now = int(time.time() * 1000)
        # an empty out-of-range reason: each row's own declared-constraint violation, as the decoder words it
        return [DeadLetter(source_topic=topic, partition=partition, offset=batch.offsets[i], key=batch.keys[i],
                           value=batch.payloads[i], error_kind=kind,
                           message=batch.violations.get(i, reason) if kind == "out-of-range" and not reason else reason,
                           time=now)
                for i in where.tolist()]


class FirstBytes:
    """Events scored again after a restart get the bytes of their first predictions (None: as encoded)."""

    def __init__(self, emitted: EmittedPredictions | None = None) -> None:
        self.emitted = emitted

    def reuse(self, encoded: tuple[EventBatch, list[OutgoingMessage]]) -> list[OutgoingMessage]:
        """The prediction messages, with first-emission bytes where an event was emitted before."""
        batch, messages = encoded
        if self.emitted is not None and messages:
            self.emitted.reuse(batch, messages)
        return messages


@dataclass(frozen=True)
class ScoringSteps:
    """The functions the scoring dataflow is built from, one job each."""

    decoder: EventDecoder
    scorer: BatchScorer
    predictions: PredictionEncoder
    alerts: AlertEncoder
    dead_letters: DeadLetterEncoder
    first_bytes: FirstBytes
    serdes: TopicSerdes


def scoring_steps(active: Any, serdes: TopicSerdes, bound: BoundPipeline, *, clock: Clock = wall_clock,
                  emitted: EmittedPredictions | None = None, faults: FaultPolicy | None = None,
                  call: ModelCall = call_batch, wait_for_model_s: float | None = None) -> ScoringSteps:
    """The steps of one scoring dataflow of ``bound`` over ``active``, in the wire format of ``serdes``.

    ``active``: the :class:`ActiveModels` of a one-model pipeline, or the
    :class:`~edml.scoring.routing.ModelSet` of a routed one (routes, fallbacks, ensembles).
    """
    decoder = EventDecoder(bound, serdes.for_schema(serdes.topics.trips, bound.schema))
    predictions = PredictionEncoder(serdes, bound, stamp_positions=emitted is not None)
    scorer: BatchScorer
    if isinstance(active, ActiveModels):
        scorer = BatchScorer(active, faults, wait_for_model_s, call, clock)
    else:
        from edml.scoring.routing import RoutedScorer

        scorer = RoutedScorer(active, faults, call, clock)
    return ScoringSteps(decoder, scorer, predictions,
                        AlertEncoder(predictions, bound), DeadLetterEncoder(serdes), FirstBytes(emitted), serdes)
