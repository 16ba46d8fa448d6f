"""A corrected trip (same id, other content) keeps its own prediction through a kill -9 and a model swap.

The re-use of first-emission bytes after a restart is matched by the source position (topic,
partition, offset) each prediction carries, never by the trip id alone: keyed by id, both the
trip and its correction were re-emitted with the first one's bytes (a replaced model's).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import pytest
from edml.schemas.serde import prediction_serde
from edml.trainer.generator import GeneratedTrip, generate_trips
from edml.trainer.producing import produce_trips

from edml.core.config import Settings
from edml.kafka.reading import read_to_end
from tests.integration.scorer_process import ScorerProcess
from tests.reliability.harness import TinyModels, publish, running, wait_for, wait_status

pytestmark = pytest.mark.kafka
TRIPS = 100


def corrected(trip: GeneratedTrip) -> GeneratedTrip:
    """The same trip id with another pick-up time and distance (so another prediction)."""
    pickup = dataclasses.replace(trip.pickup, pickup_time=trip.pickup.pickup_time + 60_000,
                                 trip_distance_km=trip.pickup.trip_distance_km * 1.5 + 1.0)
    return trip._replace(pickup=pickup)


def test_corrections_keep_their_own_prediction_after_kill_9(settings: Settings, tiny_models: TinyModels) -> None:
    originals = generate_trips(TRIPS, seed=14)
    corrections = [corrected(t) for t in originals]
    publish(settings, tiny_models.v1, "v1")
    # no snapshot before the kill: every trip is read again after the restart
    first = ScorerProcess(settings, args=["--epoch-interval", "600"]).start()
    try:
        first.wait_healthy(120)
        produce_trips(settings, originals)
        wait_for(lambda: _count(settings) >= TRIPS, 90, first, "predictions of the originals")
        publish(settings, tiny_models.v2, "v2")
        wait_status(settings, "v2", "active", 60, first.log())
        produce_trips(settings, corrections)
        wait_for(lambda: _count(settings) >= 2 * TRIPS, 90, first, "predictions of the corrections")
    finally:
        first.kill()
    with running(ScorerProcess(settings)) as scorer:
        wait_for(lambda: _count(settings) >= 4 * TRIPS, 120, scorer, "re-emitted predictions")

    serde = prediction_serde()
    by_event: dict[tuple[str, int], list[bytes]] = defaultdict(list)  # (trip id, event time) -> values
    for m in read_to_end(settings, settings.topics.predictions):
        p = serde.decode(m.value)
        by_event[(p.trip_id, p.event_time)].append(m.value)
    correction_events = {(t.pickup.trip_id, t.pickup.pickup_time) for t in corrections}
    repeated = [e for e, values in by_event.items() if len(values) > 1]
    differing = [e for e, values in by_event.items() if len(set(values)) > 1]
    corrections_by_v2 = sum(
        all(serde.decode(v).model_version == "v2" for v in by_event.get(e, [])) and len(by_event.get(e, [])) > 1
        for e in correction_events)
    print(f"\n[corrections] events={2 * TRIPS} (trips={TRIPS} corrections={TRIPS}) "
          f"predictions={sum(map(len, by_event.values()))} events_with_predictions={len(by_event)} "
          f"re-emitted_events={len(repeated)} repeats_differing={len(differing)} "
          f"corrections_re-emitted_as_v2={corrections_by_v2}/{TRIPS}")
    assert len(by_event) == 2 * TRIPS, "an event has no prediction"
    assert not differing, f"repeats differ from the first prediction for {differing[:5]}"
    assert len(repeated) == 2 * TRIPS, "every event read again after the restart is re-emitted once"
    assert corrections_by_v2 == TRIPS, "a correction was re-emitted with another event's prediction"


def _count(settings: Settings) -> int:
    return len(read_to_end(settings, settings.topics.predictions))
