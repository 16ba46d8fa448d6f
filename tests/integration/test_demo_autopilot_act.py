"""The demo's autopilot act against the real broker, with real ``edml serve``, ``edml evaluate`` and
``edml autopilot run`` processes: once traffic slows, a retrained model becomes champion and serves,
and nobody but the traffic did anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from edml.model_topic.history import desired_records
from edml.model_topic.publisher import publish_model

from edml.autopilot.events import read_history
from edml.cli.autopilot_demo import run_autopilot_act
from edml.core.config import Settings
from tests.integration.scorer_process import ScorerProcess, predictions, scorer_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_slowed_traffic_ends_with_a_retrained_champion_serving(settings: Settings, trained_model_dir: Path,
                                                               tmp_path: Path) -> None:
    champion = publish_model(settings, trained_model_dir, settings.model_name).version
    scorer = ScorerProcess(settings).start()
    try:
        scorer.wait_healthy()
        run_autopilot_act(settings, scorer_env(settings), tmp_path, trips_per_day=2000, rate=250.0)
    finally:
        scorer.stop()

    history = read_history(settings, "taxi")
    steps = [e.step for e in history]
    assert steps[:5] == ["trigger", "data", "trained", "gate", "published"], steps
    assert steps[-1] == "decision" and set(steps[5:-1]) == {"windows"}, steps
    trigger, data, decision = history[0], history[1], history[-1]
    assert trigger.details["kind"] == "drift" and "duration_s" in trigger.reason and champion in trigger.reason
    assert data.figures["train"] >= 1000  # the act's min_rows: a slowed day, recorded and labelled
    assert decision.details["decision"] == "promoted" and decision.champion == champion
    assert decision.figures["candidate_loss"] < decision.figures["champion_loss"]
    new = decision.candidate
    assert desired_records(settings)[settings.model_name].version == new
    served = [p for p in predictions(settings) if p.model_version == new]
    assert served and all(p.role == "champion" for p in served)  # the scorer swapped to it
