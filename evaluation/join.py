"""The prediction x drop-off join: whichever side arrives first waits for the other.

A trip has one drop-off (its actual duration) and one prediction per model version that
scored it (the champion's, and each challenger's in shadow). The join keeps, per trip id:

* predictions that wait for their drop-off, and
* the drop-off once it arrived, so that predictions arriving after it (a challenger a little
  behind, a scorer catching up) are still evaluated, until the trip expires.

Time is event time. Each shard of the join has a clock: the smaller of the newest prediction
event time (pick-up) and the newest drop-off time it has seen, so that one input racing ahead
of the other (catching up on a backlog) never expires trips whose other side is still queued.
A trip expires when the clock passes its deadline, ``join_timeout`` after its latest known
time; expiring emits what was left unmatched:

* a prediction without drop-off -> an ``Evaluation`` with outcome ``no-dropoff``;
* a drop-off that never met any prediction -> outcome ``no-prediction``.

Duplicates (at-least-once producers) are dropped: one drop-off per trip, one prediction per
(model name, version, role).
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from bytewax.operators import StatefulLogic
from edml.schemas.records import Evaluation, Prediction
from edml.trainer.records import TripDropoff

EVALUATED = "evaluated"
NO_DROPOFF = "no-dropoff"
NO_PREDICTION = "no-prediction"
OUTCOMES = (EVALUATED, NO_DROPOFF, NO_PREDICTION)

JoinInput = Prediction | TripDropoff


def shard_of(trip_id: str, shards: int) -> str:
    """The join shard (a Bytewax key) of a trip: stable across processes and restarts."""
    return f"shard-{zlib.crc32(trip_id.encode()) % shards}"


def evaluate(prediction: Prediction, dropoff: TripDropoff) -> Evaluation:
    """The evaluation of one prediction against the trip's actual duration.

    Its ``observed_time`` is the drop-off time, when the error became knowable: the same for
    every version that scored the trip, whatever order the inputs were read in, so champion and
    challengers are windowed on the same trips.
    """
    return Evaluation(
        trip_id=prediction.trip_id,
        outcome=EVALUATED,
        model_name=prediction.model_name,
        model_version=prediction.model_version,
        role=prediction.role,
        event_time=prediction.event_time,
        observed_time=dropoff.dropoff_time,
        actual_duration_s=dropoff.duration_s,
        predicted_duration_s=prediction.predicted_duration_s,
        error_s=prediction.predicted_duration_s - dropoff.duration_s,
    )


def _prediction_expired(prediction: Prediction, clock: int) -> Evaluation:
    return Evaluation(
        trip_id=prediction.trip_id,
        outcome=NO_DROPOFF,
        model_name=prediction.model_name,
        model_version=prediction.model_version,
        role=prediction.role,
        event_time=prediction.event_time,
        observed_time=clock,
        predicted_duration_s=prediction.predicted_duration_s,
    )


def _dropoff_expired(dropoff: TripDropoff, clock: int) -> Evaluation:
    return Evaluation(
        trip_id=dropoff.trip_id,
        outcome=NO_PREDICTION,
        model_name="",
        model_version="",
        role="",
        event_time=dropoff.dropoff_time - round(dropoff.duration_s * 1000),
        observed_time=clock,
        actual_duration_s=dropoff.duration_s,
    )


def _prediction_id(p: Prediction) -> tuple[str, str, str]:
    return (p.model_name, p.model_version, p.role)


@dataclass(frozen=True, slots=True)
class PendingTrip:
    """What the join holds for one trip. Frozen: a snapshot can share it safely."""

    dropoff: TripDropoff | None = None
    waiting: tuple[Prediction, ...] = ()
    evaluated: frozenset[tuple[str, str, str]] = frozenset()
    deadline: int = 0


@dataclass(frozen=True)
class JoinSnapshot:
    """The recoverable state of one join shard."""

    prediction_clock: int | None
    dropoff_clock: int | None
    trips: dict[str, PendingTrip] = field(default_factory=dict)


class TripJoin(StatefulLogic[JoinInput, Evaluation, JoinSnapshot]):
    """One shard of the join (Bytewax ``StatefulLogic``): predictions and drop-offs in, evaluations out."""

    def __init__(self, timeout_ms: int, resume: JoinSnapshot | None = None) -> None:
        self.timeout_ms = timeout_ms
        self.prediction_clock = resume.prediction_clock if resume else None
        self.dropoff_clock = resume.dropoff_clock if resume else None
        self.trips: dict[str, PendingTrip] = dict(resume.trips) if resume else {}
        # (deadline, trip id); entries whose deadline is older than the trip's are stale
        self._deadlines = [(t.deadline, trip_id) for trip_id, t in self.trips.items()]
        heapq.heapify(self._deadlines)

    @property
    def clock(self) -> int | None:
        """Event time up to which both inputs have been seen (None until both have)."""
        if self.prediction_clock is None or self.dropoff_clock is None:
            return None
        return min(self.prediction_clock, self.dropoff_clock)

    def on_item(self, value: JoinInput) -> tuple[Iterable[Evaluation], bool]:
        """Join one prediction or drop-off, then expire what the clock has passed."""
        if isinstance(value, Prediction):
            out = self._on_prediction(value)
            self.prediction_clock = max(self.prediction_clock or value.event_time, value.event_time)
        else:
            out = self._on_dropoff(value)
            self.dropoff_clock = max(self.dropoff_clock or value.dropoff_time, value.dropoff_time)
        out.extend(self._expire())
        return out, StatefulLogic.RETAIN

    def _on_prediction(self, p: Prediction) -> list[Evaluation]:
        trip = self.trips.get(p.trip_id, PendingTrip())
        pid = _prediction_id(p)
        if pid in trip.evaluated:
            return []  # a re-emitted prediction: already counted
        if trip.dropoff is not None:
            self.trips[p.trip_id] = replace(trip, evaluated=trip.evaluated | {pid})
            return [evaluate(p, trip.dropoff)]
        waiting = tuple(w for w in trip.waiting if _prediction_id(w) != pid) + (p,)
        self._put(p.trip_id, replace(trip, waiting=waiting), p.event_time + self.timeout_ms)
        return []

    def _on_dropoff(self, d: TripDropoff) -> list[Evaluation]:
        trip = self.trips.get(d.trip_id, PendingTrip())
        if trip.dropoff is not None:
            return []  # a re-emitted drop-off
        out = [evaluate(p, d) for p in trip.waiting]
        evaluated = trip.evaluated | {_prediction_id(p) for p in trip.waiting}
        # keep the drop-off until the deadline: challengers' predictions may still come
        self._put(d.trip_id, PendingTrip(d, (), evaluated, trip.deadline), d.dropoff_time + self.timeout_ms)
        return out

    def _put(self, trip_id: str, trip: PendingTrip, deadline: int) -> None:
        if deadline > trip.deadline:
            trip = replace(trip, deadline=deadline)
            heapq.heappush(self._deadlines, (deadline, trip_id))
        self.trips[trip_id] = trip

    def _expire(self) -> list[Evaluation]:
        clock = self.clock
        out: list[Evaluation] = []
        if clock is None:
            return out
        while self._deadlines and self._deadlines[0][0] < clock:
            deadline, trip_id = heapq.heappop(self._deadlines)
            trip = self.trips.get(trip_id)
            if trip is None or trip.deadline != deadline:
                continue  # stale entry: the trip is gone or waits longer now
            del self.trips[trip_id]
            out.extend(_prediction_expired(p, clock) for p in trip.waiting)
            if trip.dropoff is not None and not trip.evaluated:
                out.append(_dropoff_expired(trip.dropoff, clock))
        return out

    def snapshot(self) -> JoinSnapshot:
        """A copy of the shard's state; the entries are frozen, so a shallow copy is safe."""
        return JoinSnapshot(self.prediction_clock, self.dropoff_clock, dict(self.trips))

    def pending(self) -> int:
        """Trips held (waiting for a side, or keeping a drop-off for late challengers)."""
        return len(self.trips)
