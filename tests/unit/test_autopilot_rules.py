"""The autopilot's declaration, triggers, time split and status lines (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from edml.schemas.records import AutopilotEvent, DriftAlert, ScoreWindow

from edml.autopilot.controller import REASON_CHARS, one_line
from edml.autopilot.dataset import split_in_time
from edml.autopilot.events import format_event, format_history
from edml.autopilot.progress import SHADOW, Progress, load_progress, save_progress
from edml.autopilot.triggers import (
    DRIFT,
    ERROR,
    PROCEED,
    SCHEDULE,
    SKIP,
    WAIT,
    data_verdict,
    next_trigger,
    shadow_expired,
)
from edml.pipelines.autopilot import AutopilotDeclaration, parse_autopilot
from edml.pipelines.declaration import PipelineError, load_pipeline

H = 3_600_000
DECL = AutopilotDeclaration(trainer="m:f", error_threshold=400.0, error_windows=3, cooldown_ms=H, schedule_ms=0)


def _window(start: int, mae: float, version: str = "v1") -> ScoreWindow:
    return ScoreWindow("trip-duration", version, "champion", start, start + H, 100, mae, mae, 0.0, mae)


def _alert(reference: str = "trip-duration v1") -> DriftAlert:
    return DriftAlert("duration_s", 0.9, 0.25, 0, H, 500, reference)


def _trigger(alerts: list[DriftAlert] | None = None, windows: list[ScoreWindow] | None = None, *,
             now: int = 10 * H, last_run: int | None = None, last_end: int | None = None,
             decl: AutopilotDeclaration = DECL):  # noqa: ANN202 - Trigger | None
    return next_trigger(now_ms=now, last_run_ms=last_run, last_end_ms=last_end, new_alerts=alerts or [],
                        windows=windows or [], model_name="trip-duration", champion="v1", declaration=decl)


def test_the_built_in_pipelines_declare_their_autopilot() -> None:
    taxi, moderation = load_pipeline("taxi").autopilot, load_pipeline("moderation").autopilot
    assert taxi is not None and taxi.trainer == "edml.trainer.from_set:train_trips"
    assert taxi.data_window_ms == 24 * H and taxi.params == {"epochs": 6}
    assert moderation is not None and moderation.trainer_module == "edml.trainer.moderation.from_set"


@pytest.mark.parametrize(("table", "words"), [
    ({}, 'trainer = "module:function"'),
    ({"trainer": "no_colon"}, 'trainer = "module:function"'),
    ({"trainer": "m:f", "margin": 1.5}, "margin must be a number in [0, 1)"),
    ({"trainer": "m:f", "holdout": "a lot"}, "holdout must be a number"),
    ({"trainer": "m:f", "error_windows": -1}, "error_windows must be a whole number >= 0"),
    ({"trainer": "m:f", "data_window_s": 0}, "data_window_s must be a number of seconds"),
    ({"trainer": "m:f", "shadow_windows": 0}, "shadow_windows must be a whole number >= 1"),
    ({"trainer": "m:f", "shadow_timeout_s": -1}, "shadow_timeout_s must be a number of seconds >= 0"),
    ({"trainer": "m:f", "shadow_timeout_s": "2d"}, "shadow_timeout_s must be a number of seconds >= 0"),
    ({"trainer": "m:f", "epochs": 3}, "unknown key(s) ['epochs']"),
    ({"trainer": "m:f", "params": 3}, "params must be a table"),
    ({"trainer": "m:f", "error_threshold": 1.0, "error_windows": 0}, "error_threshold needs error_windows >= 1"),
])
def test_a_bad_autopilot_table_is_one_line_naming_the_key(table: dict, words: str) -> None:
    with pytest.raises(PipelineError) as e:
        parse_autopilot(table, "pipeline p (p.toml)", Path("/decl"))
    message = str(e.value)
    assert words in message and message.startswith("pipeline p (p.toml): [autopilot]") and "\n" not in message


def test_a_good_table_reads_seconds_as_ms_and_archive_beside_the_declaration() -> None:
    d = parse_autopilot({"trainer": "m:f", "data_window_s": 90, "cooldown_s": 1.5, "schedule_s": 60,
                         "shadow_timeout_s": 7200, "archive": "rec", "params": {"epochs": 1}}, "pipeline p",
                        Path("/decl"))
    assert (d.data_window_ms, d.cooldown_ms, d.schedule_ms, d.shadow_timeout_ms) == (90_000, 1500, 60_000, 2 * H)
    assert parse_autopilot({"trainer": "m:f"}, "pipeline p", Path("/decl")).shadow_timeout_ms == 48 * H
    assert d.archive == Path("/decl/rec") and d.params == {"epochs": 1} and d.error_threshold is None


def test_a_drift_alert_about_the_champion_triggers_one_about_another_version_does_not() -> None:
    t = _trigger([_alert()])
    assert t is not None and t.kind == DRIFT and "duration_s" in t.reason
    assert _trigger([_alert("trip-duration v0")]) is None
    assert _trigger([_alert("/refs/reference.json")]) is not None  # a reference file stands for the champion
    assert _trigger([]) is None


def test_the_error_trigger_needs_k_windows_in_a_row_above_the_threshold() -> None:
    high = [_window(i * H, 500.0) for i in range(3)]
    t = _trigger(windows=high)
    assert t is not None and t.kind == ERROR and "last 3 windows" in t.reason
    assert _trigger(windows=high[:2]) is None  # only 2 windows
    assert _trigger(windows=[*high, _window(3 * H, 300.0)]) is None  # the last one is fine again
    assert _trigger(windows=[_window(i * H, 500.0, "v0") for i in range(3)]) is None  # not the champion


def test_cool_down_holds_every_trigger_and_the_schedule_fires_when_due() -> None:
    assert _trigger([_alert()], last_end=10 * H - H // 2) is None
    assert _trigger([_alert()], last_end=10 * H - 2 * H) is not None
    every = AutopilotDeclaration(trainer="m:f", schedule_ms=5 * H, cooldown_ms=0)
    t = _trigger(decl=every, last_run=4 * H)
    assert t is not None and t.kind == SCHEDULE
    assert _trigger(decl=every, last_run=6 * H) is None


def test_a_run_short_of_labelled_rows_waits_one_cool_down_for_them_then_is_skipped() -> None:
    decl = AutopilotDeclaration(trainer="m:f", min_rows=200, cooldown_ms=H)
    triggered = 10 * H
    assert data_verdict(50, triggered, triggered, decl) == WAIT  # the trigger stays pending
    assert data_verdict(199, triggered + H - 1, triggered, decl) == WAIT
    assert data_verdict(200, triggered + H // 2, triggered, decl) == PROCEED  # enough traffic recorded meanwhile
    assert data_verdict(199, triggered + H, triggered, decl) == SKIP  # a cool-down old: stale
    no_wait = AutopilotDeclaration(trainer="m:f", min_rows=200, cooldown_ms=0)
    assert data_verdict(50, triggered, triggered, no_wait) == SKIP
    assert data_verdict(500, triggered, triggered, no_wait) == PROCEED


def test_a_challenger_is_past_its_shadow_time_limit_only_when_one_is_declared() -> None:
    decl = AutopilotDeclaration(trainer="m:f", shadow_timeout_ms=48 * H)
    assert not shadow_expired(now_ms=48 * H - 1, since_ms=0, declaration=decl)
    assert shadow_expired(now_ms=48 * H, since_ms=0, declaration=decl)
    unlimited = AutopilotDeclaration(trainer="m:f", shadow_timeout_ms=0)
    assert not shadow_expired(now_ms=1000 * H, since_ms=0, declaration=unlimited)


def test_a_failure_reason_is_one_line_with_the_error_type() -> None:
    assert one_line(ValueError("bad\n  folder")) == "ValueError: bad folder"
    long = one_line(RuntimeError("x" * 2000))
    assert len(long) == REASON_CHARS and long.startswith("RuntimeError: xxx") and long.endswith("...")


@pytest.mark.parametrize(("n", "holdout", "train"), [(100, 0.2, 80), (10, 0.25, 8), (2, 0.5, 1), (3, 0.0, 2),
                                                     (1, 0.2, 1), (0, 0.2, 0), (5, 0.99, 1)])
def test_the_time_split_trains_on_the_oldest_and_holds_out_the_newest(n: int, holdout: float, train: int) -> None:
    assert split_in_time(n, holdout) == train


def test_status_lines_show_the_step_the_versions_the_reason_and_the_figures() -> None:
    a = AutopilotEvent("taxi", "trip-duration", "run1", "gate", 1_764_300_000_000, "replay gate passed: ...",
                       "v1", "ap-run1-1", {"candidate_loss": 250.0, "champion_loss": 410.5})
    b = AutopilotEvent("taxi", "trip-duration", "run2", "trigger", 1_764_300_100_000, "drift alert on duration_s")
    line = format_event(a)
    assert "2025-11-28" in line and "run1" in line and "gate" in line and "champion=v1" in line
    assert "candidate=ap-run1-1" in line and "[candidate_loss 250, champion_loss 410.5]" in line
    assert format_history([a, a, b])[2] == ""  # a blank line between runs


def test_progress_survives_a_restart(tmp_path: Path) -> None:
    assert load_progress(tmp_path).phase == "idle"
    save_progress(tmp_path, Progress(phase=SHADOW, run_id="r", candidate="ap-r-1", alerts_seen=4))
    again = load_progress(tmp_path)
    assert (again.phase, again.candidate, again.alerts_seen) == (SHADOW, "ap-r-1", 4)
