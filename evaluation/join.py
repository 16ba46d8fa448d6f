"""The prediction x label join: whichever side arrives first waits for the other.

An event (a key of the pipeline) has one label (the truth) and one prediction per model version
that scored it (the champion's, and each challenger's in shadow). The join keeps, per key:

* predictions that wait for their label, and
* the label once it arrived, so that predictions arriving after it (a challenger a little
  behind, a scorer catching up) are still evaluated, until the key expires.

Time is event time. Each shard of the join has a clock: the smaller of the newest prediction
event time and the newest label time it has seen, so that one input racing ahead of the other
(catching up on a backlog) never expires keys whose other side is still queued. A key expires
when the clock passes its deadline, ``join_timeout`` after its latest known time; expiring emits
what was left unmatched:

* a prediction without label -> an ``Evaluation`` with outcome ``no-label``;
* a label that never met any prediction -> outcome ``no-prediction``.

Duplicates (at-least-once producers) are dropped: one label per key, one prediction per
(model name, version, role).
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from bytewax.operators import StatefulLogic
from edml.schemas.records import Evaluation

EVALUATED = "evaluated"
NO_LABEL = "no-label"
NO_PREDICTION = "no-prediction"
OUTCOMES = (EVALUATED, NO_LABEL, NO_PREDICTION)


@dataclass(frozen=True, slots=True)
class Scored:
    """One prediction, as the join needs it: the key, the judged value and the lineage."""

    key: str
    model_name: str
    model_version: str
    role: str
    event_time: int
    predicted: float


@dataclass(frozen=True, slots=True)
class Label:
    """One label: the key, the true value and when it became known (event time)."""

    key: str
    actual: float
    time: int


JoinInput = Scored | Label


def shard_of(key: str, shards: int) -> str:
    """The join shard (a Bytewax key) of an event's key: stable across processes and restarts."""
    return f"shard-{zlib.crc32(key.encode()) % shards}"


def evaluate(prediction: Scored, label: Label) -> Evaluation:
    """The evaluation of one prediction against the label.

    Its ``observed_time`` is the label's time, when the error became knowable: the same for
    every version that scored the event, whatever order the inputs were read in, so champion and
    challengers are windowed on the same events.
    """
    return Evaluation(
        key=prediction.key,
        outcome=EVALUATED,
        model_name=prediction.model_name,
        model_version=prediction.model_version,
        role=prediction.role,
        event_time=prediction.event_time,
        observed_time=label.time,
        actual=label.actual,
        predicted=prediction.predicted,
        error=prediction.predicted - label.actual,
    )


def _prediction_expired(prediction: Scored, clock: int) -> Evaluation:
    return Evaluation(
        key=prediction.key,
        outcome=NO_LABEL,
        model_name=prediction.model_name,
        model_version=prediction.model_version,
        role=prediction.role,
        event_time=prediction.event_time,
        observed_time=clock,
        predicted=prediction.predicted,
    )


def _label_expired(label: Label, clock: int) -> Evaluation:
    return Evaluation(
        key=label.key,
        outcome=NO_PREDICTION,
        model_name="",
        model_version="",
        role="",
        event_time=label.time,
        observed_time=clock,
        actual=label.actual,
    )


def _prediction_id(p: Scored) -> tuple[str, str, str]:
    return (p.model_name, p.model_version, p.role)


@dataclass(frozen=True, slots=True)
class PendingKey:
    """What the join holds for one key. Frozen: a snapshot can share it safely."""

    label: Label | None = None
    waiting: tuple[Scored, ...] = ()
    evaluated: frozenset[tuple[str, str, str]] = frozenset()
    deadline: int = 0


@dataclass(frozen=True)
class JoinSnapshot:
    """The recoverable state of one join shard."""

    prediction_clock: int | None
    label_clock: int | None
    keys: dict[str, PendingKey] = field(default_factory=dict)


class KeyJoin(StatefulLogic[JoinInput, Evaluation, JoinSnapshot]):
    """One shard of the join (Bytewax ``StatefulLogic``): predictions and labels in, evaluations out."""

    def __init__(self, timeout_ms: int, resume: JoinSnapshot | None = None) -> None:
        self.timeout_ms = timeout_ms
        self.prediction_clock = resume.prediction_clock if resume else None
        self.label_clock = resume.label_clock if resume else None
        self.keys: dict[str, PendingKey] = dict(resume.keys) if resume else {}
        # (deadline, key); entries whose deadline is older than the key's are stale
        self._deadlines = [(t.deadline, key) for key, t in self.keys.items()]
        heapq.heapify(self._deadlines)

    @property
    def clock(self) -> int | None:
        """Event time up to which both inputs have been seen (None until both have)."""
        if self.prediction_clock is None or self.label_clock is None:
            return None
        return min(self.prediction_clock, self.label_clock)

    def on_item(self, value: JoinInput) -> tuple[Iterable[Evaluation], bool]:
        """Join one prediction or label, then expire what the clock has passed."""
        if isinstance(value, Scored):
            out = self._on_prediction(value)
            self.prediction_clock = max(self.prediction_clock or value.event_time, value.event_time)
        else:
            out = self._on_label(value)
            self.label_clock = max(self.label_clock or value.time, value.time)
        out.extend(self._expire())
        return out, StatefulLogic.RETAIN

    def _on_prediction(self, p: Scored) -> list[Evaluation]:
        pending = self.keys.get(p.key, PendingKey())
        pid = _prediction_id(p)
        if pid in pending.evaluated:
            return []  # a re-emitted prediction: already counted
        if pending.label is not None:
            self.keys[p.key] = replace(pending, evaluated=pending.evaluated | {pid})
            return [evaluate(p, pending.label)]
        waiting = tuple(w for w in pending.waiting if _prediction_id(w) != pid) + (p,)
        self._put(p.key, replace(pending, waiting=waiting), p.event_time + self.timeout_ms)
        return []

    def _on_label(self, label: Label) -> list[Evaluation]:
        pending = self.keys.get(label.key, PendingKey())
        if pending.label is not None:
            return []  # a re-emitted label
        out = [evaluate(p, label) for p in pending.waiting]
        evaluated = pending.evaluated | {_prediction_id(p) for p in pending.waiting}
        # keep the label until the deadline: challengers' predictions may still come
        self._put(label.key, PendingKey(label, (), evaluated, pending.deadline), label.time + self.timeout_ms)
        return out

    def _put(self, key: str, pending: PendingKey, deadline: int) -> None:
        if deadline > pending.deadline:
            pending = replace(pending, deadline=deadline)
            heapq.heappush(self._deadlines, (deadline, key))
        self.keys[key] = pending

    def _expire(self) -> list[Evaluation]:
        clock = self.clock
        out: list[Evaluation] = []
        if clock is None:
            return out
        while self._deadlines and self._deadlines[0][0] < clock:
            deadline, key = heapq.heappop(self._deadlines)
            pending = self.keys.get(key)
            if pending is None or pending.deadline != deadline:
                continue  # stale entry: the key is gone or waits longer now
            del self.keys[key]
            out.extend(_prediction_expired(p, clock) for p in pending.waiting)
            if pending.label is not None and not pending.evaluated:
                out.append(_label_expired(pending.label, clock))
        return out

    def snapshot(self) -> JoinSnapshot:
        """A copy of the shard's state; the entries are frozen, so a shallow copy is safe."""
        return JoinSnapshot(self.prediction_clock, self.label_clock, dict(self.keys))

    def pending(self) -> int:
        """Keys held (waiting for a side, or keeping a label for late challengers)."""
        return len(self.keys)
