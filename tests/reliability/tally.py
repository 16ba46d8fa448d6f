"""What a reliability test sent and what came out: predictions, dead letters, duplicates, losses.

Every test prints a :class:`Tally` line, so the figures of each fault appear in the test output.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from edml.schemas.records import DeadLetter, Prediction
from edml.schemas.serde import prediction_serde

from edml.core.config import Settings
from edml.kafka.reading import read_to_end
from tests.integration.scorer_process import dead_letters


@dataclass
class Tally:
    """The trips sent (by id), the bad messages sent, and what the topics hold afterwards."""

    label: str
    trip_ids: set[str]
    bad_sent: int = 0
    predictions: list[Prediction] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)  # each prediction as it is on the topic

    @classmethod
    def read(cls, label: str, settings: Settings, trip_ids: Iterable[str], bad_sent: int = 0) -> Tally:
        """Read the predictions and dead-letter topics of ``settings`` now."""
        serde = prediction_serde()
        encoded = [m.value for m in read_to_end(settings, settings.topics.predictions)]
        return cls(label, set(trip_ids), bad_sent, [serde.decode(v) for v in encoded], dead_letters(settings),
                   encoded)

    @property
    def sent(self) -> int:
        """Every message sent: trips and bad messages."""
        return len(self.trip_ids) + self.bad_sent

    @property
    def by_trip(self) -> dict[str, list[Prediction]]:
        """Predictions grouped by trip id, in topic order."""
        out: dict[str, list[Prediction]] = defaultdict(list)
        for p in self.predictions:
            out[p.trip_id].append(p)
        return out

    @property
    def unique(self) -> int:
        """Trips with at least one prediction."""
        return len(self.by_trip)

    @property
    def duplicates(self) -> int:
        """Predictions beyond the first of their trip (at-least-once output)."""
        return len(self.predictions) - self.unique

    @property
    def repeated_trips(self) -> int:
        """Trips with more than one prediction."""
        return sum(len(preds) > 1 for preds in self.by_trip.values())

    @property
    def lost(self) -> set[str]:
        """Trip ids sent that have no prediction."""
        return self.trip_ids - set(self.by_trip)

    @property
    def differing_repeats(self) -> list[str]:
        """Trip ids whose repeated predictions are not byte for byte their first one."""
        first: dict[str, bytes] = {}
        differing = set()
        for p, value in zip(self.predictions, self.encoded, strict=True):
            if first.setdefault(p.trip_id, value) != value:
                differing.add(p.trip_id)
        return sorted(differing)

    def line(self) -> str:
        """One line of figures."""
        return (f"[{self.label}] sent={self.sent} (trips={len(self.trip_ids)} bad={self.bad_sent}) "
                f"predictions={len(self.predictions)} unique_trips={self.unique} duplicated={self.duplicates} "
                f"dead_letters={len(self.dead)} lost={len(self.lost)} repeats_differing={len(self.differing_repeats)}")

    def print(self) -> Tally:
        """Print :meth:`line` (pytest shows it with ``-s`` and in the report of a failure)."""
        print(self.line())
        return self

    def assert_nothing_lost(self) -> None:
        """Every trip has a prediction and every repeat is byte-identical to the first."""
        assert not self.lost, f"{self.line()}: lost e.g. {sorted(self.lost)[:5]}"
        assert not self.differing_repeats, f"{self.line()}: repeats differ for {self.differing_repeats[:5]}"
