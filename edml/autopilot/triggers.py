"""When the controller trains: a drift alert, a sustained rise of the champion's live loss, or the schedule.

Pure functions of what the topics hold and the controller's clock, so they are tested without a
broker. The cool-down is checked first: right after a run (whatever its outcome) the alerts and
windows that caused it are still there, and would trigger again at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edml.evaluation.scores import by_version, loss_metric
from edml.pipelines.autopilot import AutopilotDeclaration
from edml.schemas.records import DriftAlert, ScoreWindow

DRIFT = "drift"
ERROR = "error"
SCHEDULE = "schedule"


@dataclass(frozen=True)
class Trigger:
    """Why a run starts: its kind (drift, error, schedule) and one line saying what was seen."""

    kind: str
    reason: str


def relevant_alert(alert: DriftAlert, model_name: str, champion: str) -> bool:
    """Whether ``alert`` is about the serving champion: measured against its reference, or a declared file's."""
    if alert.reference.startswith(f"{model_name} "):
        return alert.reference == f"{model_name} {champion}"
    return True  # a reference file the evaluation was given: it stands for the model that serves


def drift_trigger(alerts: Sequence[DriftAlert], model_name: str, champion: str) -> Trigger | None:
    """A trigger for the newest alert about the champion among ``alerts`` (the ones not seen before)."""
    mine = [a for a in alerts if relevant_alert(a, model_name, champion)]
    if not mine:
        return None
    worst = max(mine, key=lambda a: a.psi)
    features = sorted({a.feature for a in mine})
    return Trigger(DRIFT, f"drift alert on {', '.join(features)}: PSI {worst.psi:.3f} > {worst.threshold:g} "
                          f"({worst.feature}, {worst.count} events, reference {worst.reference})")


def error_trigger(windows: Sequence[ScoreWindow], model_name: str, champion: str,
                  declaration: AutopilotDeclaration) -> Trigger | None:
    """A trigger when the champion's loss is above the threshold in each of its last K windows."""
    threshold, k = declaration.error_threshold, declaration.error_windows
    if threshold is None or k < 1:
        return None
    mine = [w for w in windows if w.model_name == model_name and w.model_version == champion]
    if not mine:
        return None
    metric = loss_metric(mine)
    merged = by_version(mine)
    last = [merged[key] for key in sorted(merged, key=lambda key: key[1])][-k:]
    if len(last) < k or not all(w.loss(metric) > threshold for w in last):
        return None
    losses = ", ".join(f"{w.loss(metric):.4g}" for w in last)
    return Trigger(ERROR, f"champion {champion} {metric} above {threshold:g} in its last {k} windows ({losses})")


def schedule_trigger(now_ms: int, last_run_ms: int | None, declaration: AutopilotDeclaration) -> Trigger | None:
    """A trigger when the schedule's interval has passed since the last run (or there was none)."""
    every = declaration.schedule_ms
    if every <= 0 or (last_run_ms is not None and now_ms - last_run_ms < every):
        return None
    return Trigger(SCHEDULE, f"scheduled: every {every / 1000:g} s")


def cooling_down(now_ms: int, last_end_ms: int | None, declaration: AutopilotDeclaration) -> bool:
    """Whether the last run ended less than the cool-down ago."""
    return last_end_ms is not None and now_ms - last_end_ms < declaration.cooldown_ms


def next_trigger(*, now_ms: int, last_run_ms: int | None, last_end_ms: int | None, new_alerts: Sequence[DriftAlert],
                 windows: Sequence[ScoreWindow], model_name: str, champion: str,
                 declaration: AutopilotDeclaration) -> Trigger | None:
    """The trigger that starts a run now, or None (cooling down, or nothing seen)."""
    if cooling_down(now_ms, last_end_ms, declaration):
        return None
    return (drift_trigger(new_alerts, model_name, champion)
            or error_trigger(windows, model_name, champion, declaration)
            or schedule_trigger(now_ms, last_run_ms, declaration))
