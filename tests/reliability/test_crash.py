"""kill -9 of ``edml serve`` at random moments while trips flow, then restart: nothing is lost.

The first run is killed during start-up (TensorFlow import, model topic bootstrap, model load,
recovery set-up), the others while scoring; each run's seed draws the moment. The seeds are
printed; ``EDML_CRASH_SEEDS=1,2,3`` replays a failing set.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from edml.trainer.generator import generate_trips

from edml.core.config import Settings
from tests.integration.scorer_process import ScorerProcess, predictions
from tests.reliability.harness import BackgroundTrips, TinyModels, publish, running, wait_for
from tests.reliability.tally import Tally

pytestmark = pytest.mark.kafka
RUNS = 3


def crash_seeds() -> list[int]:
    """``EDML_CRASH_SEEDS`` (comma-separated), else RUNS fresh random seeds."""
    given = os.environ.get("EDML_CRASH_SEEDS")
    if given:
        return [int(s) for s in given.split(",")]
    return [random.SystemRandom().randrange(2**31) for _ in range(RUNS)]


def test_kill_9_at_random_moments_loses_nothing(settings: Settings, tiny_models: TinyModels) -> None:
    seeds = crash_seeds()
    print(f"\n[crash] seeds={','.join(map(str, seeds))} (replay with EDML_CRASH_SEEDS={','.join(map(str, seeds))})")
    publish(settings, tiny_models.v1, "v1")
    trips = BackgroundTrips(settings, generate_trips(2500, seed=seeds[0] % 100_000), rate=80).start()
    for run, seed in enumerate(seeds, 1):
        rng = random.Random(seed)
        scorer = ScorerProcess(settings).start()
        try:
            if run == 1:
                phase, delay = "start-up", rng.uniform(0.5, 10.0)
            else:
                scorer.wait_healthy(120)
                phase, delay = "scoring", rng.uniform(0.05, 4.0)
            time.sleep(delay)
            exited_by_itself = scorer.proc.poll()
            at_kill = len(predictions(settings))
        finally:
            scorer.kill()
        print(f"[crash run {run}] seed={seed} kill -9 during {phase}, {delay:.2f}s in; "
              f"predictions on the topic at the kill={at_kill}")
        assert exited_by_itself is None, f"the scorer exited by itself ({exited_by_itself}):\n{scorer.log()}"
    trips.join()
    with running(ScorerProcess(settings)) as scorer:
        wait_for(lambda: len({p.trip_id for p in predictions(settings)}) >= len(trips.ids), 180, scorer)
    tally = Tally.read("crash", settings, trips.ids).print()
    tally.assert_nothing_lost()
    assert not tally.dead, [d.message for d in tally.dead[:3]]
    assert {p.model_version for p in tally.predictions} == {"v1"}
