"""What ``edml demo`` knows about taxi trips: the models it trains, the trips it streams, the events it breaks.

The demo (``edml.cli.demo``) tells the story of any pipeline: train, publish, serve, stream,
swap, evaluate. The taxi pipeline's part of that story is here, beside the generator and the
trainer it uses, so that the CLI names no trip field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edml.trainer.generator import DAY_MS, DEFAULT_START_MS, Drift, GeneratedTrip, generate_trips

from edml.pipelines.declaration import BUILT_IN_DIR

# Each demo phase streams one day of trips after the 28 days the models train on.
TRAIN_DAYS = 28


@dataclass(frozen=True)
class DemoModel:
    """A model the demo trained: its folder and the line that reports its error beside the baselines."""

    folder: Path
    report: str


def train_demo_model(out: Path, n: int, epochs: int, seed: int) -> DemoModel:
    """Train the trip-duration model on ``n`` generated trips of the training days into ``out``."""
    from edml.trainer.generator import generate_columns
    from edml.trainer.train import TrainConfig, train_columns

    columns = generate_columns(n, seed, start_ms=DEFAULT_START_MS, span_days=TRAIN_DAYS)
    result = train_columns(columns, out, TrainConfig(epochs=epochs, seed=seed),
                           data_source=f"generated n={n} seed={seed}")
    m = result.metrics
    return DemoModel(out, f"trained on {n:,} trips, {epochs} epochs: MAE {m.mae:.0f}s (global-mean baseline "
                          f"{m.baseline_mean_mae:.0f}s, distance-only {m.baseline_distance_mae:.0f}s)")


def demo_phase(n: int, phase: int) -> list[GeneratedTrip]:
    """The trips of phase ``phase`` (1, 2, ...): one day each, after the training days, seeded by the phase."""
    return generate_trips(n, seed=100 + phase, start_ms=DEFAULT_START_MS + (TRAIN_DAYS + phase) * DAY_MS,
                          span_days=1)


# The autopilot act: from phase 3 on, traffic slows (every trip takes twice as long).
SLOW_FROM_PHASE = 3
SLOWDOWN = 1.0

# The taxi pipeline's [autopilot] table in the demo's compressed time: only the target-drift alert
# triggers (a whole-day drift window, so the first alert comes once a slowed day is complete),
# the candidate learns the last recorded day, and three live hourly windows decide.
DEMO_AUTOPILOT = """
[autopilot]
trainer = "edml.trainer.from_set:train_trips"
margin = 0.05
shadow_windows = 3
data_window_s = 86400
holdout = 0.2
tolerance = 0.05
cooldown_s = 600
min_rows = 1000

[autopilot.params]
epochs = 5
seed = 5
"""


def slowed_phase(n: int, phase: int) -> list[GeneratedTrip]:
    """The trips of phase ``phase`` (>= 3) after traffic slowed at the start of phase 3."""
    slow_from = DEFAULT_START_MS + (TRAIN_DAYS + SLOW_FROM_PHASE) * DAY_MS
    return generate_trips(n, seed=100 + phase, start_ms=DEFAULT_START_MS + (TRAIN_DAYS + phase) * DAY_MS,
                          span_days=1, drift=Drift(slow_from, SLOWDOWN))


def declare_demo_autopilot(folder: Path) -> Path:
    """Write ``folder/taxi.toml``: the built-in taxi pipeline with the demo's [autopilot] table; returns ``folder``.

    Jobs started with ``EDML_PIPELINES_DIR=folder`` read this declaration instead of the built-in one.
    """
    built_in = (BUILT_IN_DIR / "taxi.toml").read_text()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "taxi.toml").write_text(built_in.split("\n[autopilot]")[0].rstrip() + "\n" + DEMO_AUTOPILOT)
    return folder


def actual_durations(trips: list[GeneratedTrip]) -> dict[str, float]:
    """Each trip's id -> its true duration (s): what a prediction is compared with."""
    return {t.pickup.trip_id: t.dropoff.duration_s for t in trips}


def trip_ids(trips: list[GeneratedTrip]) -> set[str]:
    """The ids of ``trips``: the keys of their predictions."""
    return {t.pickup.trip_id for t in trips}


def malformed_trips(serde: Any) -> dict[bytes, bytes]:
    """Key -> value of events the scorer must dead-letter: bytes that are not Avro, and trips out of range.

    ``serde`` is the trips topic's serde (``topic_serdes(settings).for_serde(topic, trip_serde())``), so the well-formed
    but out-of-range trips are in the topic's wire format.
    """
    trip = generate_trips(1, seed=7)[0].pickup
    return {
        b"bad-bytes": b"not avro at all",
        b"bad-zone": serde.encode(dataclasses.replace(trip, trip_id="bad-zone", pickup_zone=9999)),
        b"bad-distance": serde.encode(dataclasses.replace(trip, trip_id="bad-distance", trip_distance_km=-3.0)),
    }
