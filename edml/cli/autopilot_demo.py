"""The demo's autopilot act: traffic slows, and a retrained model takes over with no command typed.

While the scorer keeps serving, the act starts the two jobs a deployment runs beside it -- the
live evaluation (``edml evaluate``, drift check on) and the controller (``edml autopilot run``)
-- then only produces traffic: one slowed day at once, then slowed days at a pace, in compressed
time. Everything after that is theirs: the whole-day drift window of the slowed day closes, the
target-drift alert fires, the controller trains a candidate on the recorded day, gates it on the
newest held-out trips, publishes it in shadow and promotes it after three live windows. The act
watches the autopilot topic and stops the traffic once the new champion serves.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from edml.autopilot.events import read_history
from edml.cli.demo import LivePredictions, add_version_column
from edml.core.config import Settings
from edml.core.errors import Refusal
from edml.schemas.records import AutopilotEvent

if TYPE_CHECKING:
    from edml.trainer.generator import GeneratedTrip
    from edml.trainer.paced import ProduceStats

console = Console()
PIPELINE = "taxi"
# seconds the act waits for the controller's decision, and for the new champion to score trips after it
DECISION_TIMEOUT_S = 180.0
NEW_CHAMPION_TRIPS = 300


class SlowTraffic:
    """Slowed days of trips: the first at once (a day the drift check can close), then day after day at a pace."""

    def __init__(self, settings: Settings, live: LivePredictions, trips_per_day: int, rate: float) -> None:
        self.settings, self.live, self.trips_per_day, self.rate = settings, live, trips_per_day, rate
        self.sent = 0
        self.act_trips: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, daemon=True)

    def start(self) -> None:
        """Produce in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the trip being produced (its drop-off included) and wait."""
        self._stop.set()
        self._thread.join(60)

    def _day(self, phase: int) -> list[GeneratedTrip]:
        from edml.trainer.demo_story import actual_durations, slowed_phase, trip_ids

        trips = slowed_phase(self.trips_per_day, phase)
        self.live.actual.update(actual_durations(trips))
        self.act_trips.update(trip_ids(trips))
        return trips

    def _days(self, first: int) -> Iterator[GeneratedTrip]:
        for phase in itertools.count(first):
            yield from self._day(phase)

    def _produce(self) -> None:
        from edml.trainer.demo_story import SLOW_FROM_PHASE
        from edml.trainer.producing import produce_live

        # compressed time: a day of event time takes trips_per_day / rate seconds, and a drop-off
        # follows its pick-up after the same compressed duration
        def on_progress(stats: ProduceStats) -> None:
            self.sent = base + stats.events

        base = 0
        fast = self.rate * 4
        produce_live(self.settings, self._day(SLOW_FROM_PHASE), fast, self._time_scale(fast), on_progress)
        base = self.sent
        paced = itertools.takewhile(lambda _: not self._stop.is_set(), self._days(SLOW_FROM_PHASE + 1))
        produce_live(self.settings, paced, self.rate, self._time_scale(self.rate), on_progress)

    def _time_scale(self, rate: float) -> float:
        return rate * 86_400 / self.trips_per_day


def run_autopilot_act(settings: Settings, env: dict[str, str], root: Path, trips_per_day: int, rate: float) -> None:
    """Start the live evaluation and the controller, slow the traffic, and show what they do until a new champion."""
    from edml.trainer.demo_story import declare_demo_autopilot

    env = {**env, "EDML_PIPELINES_DIR": str(declare_demo_autopilot(root / "pipelines"))}
    # a drop-off follows its pick-up by the trip's duration (compressed like the events): windows wait 3 h of
    # event time, so that each is first emitted with nearly all of its labels
    jobs = {
        "edml evaluate": _start(root / "evaluate-live.log", ["evaluate", "--window", "1h", "--lateness", "3h",
                                                             "--no-recovery", "--metrics-port", "0"], env),
        "edml autopilot run": _start(root / "autopilot.log", ["autopilot", "run", "--pipeline", PIPELINE,
                                                              "--poll", "1"], env),
    }
    console.print(f"edml evaluate (drift check on, log {root / 'evaluate-live.log'}) and edml autopilot run "
                  f"(log {root / 'autopilot.log'}) started; [autopilot] table in {root / 'pipelines' / 'taxi.toml'}")
    live = LivePredictions(settings, {})
    traffic = SlowTraffic(settings, live, trips_per_day, rate)
    live.start()
    traffic.start()
    try:
        events = _watch(settings, traffic, live, jobs)
    finally:
        traffic.stop()
        live.stop()
        for job in jobs.values():
            job.terminate()
        for job in jobs.values():
            try:
                job.wait(30)
            except subprocess.TimeoutExpired:
                job.kill()
    console.print()
    console.print(_act_summary(live, traffic.act_trips, [e.champion for e in events[:1]] + [events[-1].candidate]))
    subprocess.run([sys.executable, "-m", "edml.cli", "autopilot", "status", "--pipeline", PIPELINE], env=env,
                   timeout=60)


def _start(log_path: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "edml.cli", *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def _watch(settings: Settings, traffic: SlowTraffic, live: LivePredictions,
           jobs: dict[str, subprocess.Popen]) -> list[AutopilotEvent]:
    """The controller's events as they come, until its decision and the new champion's first trips."""
    deadline = time.monotonic() + DECISION_TIMEOUT_S
    events: list[AutopilotEvent] = []
    with Live(_events_table(events, traffic, live), console=console, refresh_per_second=2) as view:
        while True:
            events = read_history(settings, PIPELINE)
            view.update(_events_table(events, traffic, live))
            decision = next((e for e in events if e.step in ("decision", "failed")), None)
            if decision is not None and decision.details.get("decision") != "promoted":
                raise Refusal(f"the autopilot did not promote its candidate: {decision.reason}")
            if decision is not None and _scored_by(live, traffic, decision.candidate) >= NEW_CHAMPION_TRIPS:
                return events
            if time.monotonic() > deadline:
                raise Refusal(f"no autopilot decision within {DECISION_TIMEOUT_S:.0f} s; see autopilot.log")
            for name, job in jobs.items():
                if job.poll() is not None:
                    raise Refusal(f"{name} exited with {job.returncode}; see its log")
            time.sleep(0.5)


def _scored_by(live: LivePredictions, traffic: SlowTraffic, version: str) -> int:
    return sum(1 for p in live.predictions() if p.model_version == version and p.trip_id in traffic.act_trips)


def _events_table(events: list[AutopilotEvent], traffic: SlowTraffic, live: LivePredictions) -> Table:
    mine = Counter(p.model_version for p in live.predictions() if p.trip_id in traffic.act_trips)
    t = Table(title=f"slowed trips sent {traffic.sent:,}  champion predictions by version "
                    + (", ".join(f"{v}: {n:,}" for v, n in sorted(mine.items())) or "-"))
    t.add_column("step")
    t.add_column("what the autopilot did")
    for e in events:
        t.add_row(e.step, e.reason)
    return t


def _act_summary(live: LivePredictions, act_trips: set[str], versions: list[str]) -> Table:
    """Predictions and error of each champion on the slowed trips."""
    preds = [p for p in live.predictions() if p.trip_id in act_trips]
    t = Table(title="slowed traffic: champion predictions before and after the autopilot")
    add_version_column(t, versions)
    for col in ("predictions", "MAE (s)"):
        t.add_column(col, justify="right")
    for version in versions:
        errors = [abs(p.predicted_duration_s - live.actual[p.trip_id]) for p in preds
                  if p.model_version == version and p.trip_id in live.actual]
        t.add_row(version, f"{len(errors):,}", f"{statistics.mean(errors):.0f}" if errors else "-")
    return t
