"""When the controller trains: a drift alert, a sustained rise of the champion's live loss, or the schedule.

Pure functions of what the topics hold and the controller's clock, so they are tested without a
broker. The cool-down is checked first: right after a run (whatever its outcome) the alerts and
windows that caused it are still there, and would trigger again at once.

Two waits of a run are ruled here too. A trigger that finds fewer than ``min_rows`` labelled events
stays pending while traffic is recorded, for at most one cool-down (the pace the declaration allows
runs at; a trigger older than that is stale), then the run is skipped without starting a cool-down:
nothing was trained, and a trigger that still holds (a live loss still high) may start the next run.
A challenger in shadow that does not get its K live windows within ``shadow_timeout_ms`` is retired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edml.evaluation.scores import by_version, loss_metric
from edml.pipelines.autopilot import AutopilotDeclaration
from edml.schemas.records import DriftAlert, ScoreWindow

DRIFT = "drift"
PROCEED, WAIT, SKIP = "proceed", "wait", "skip"
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


def data_verdict(rows: int, now_ms: int, since_ms: int, declaration: AutopilotDeclaration) -> str:
    """For a run triggered at ``since_ms`` that found ``rows`` labelled events: PROCEED, WAIT for more, or SKIP.

    It waits while the trigger is younger than the cool-down (``cooldown_ms = 0``: no wait at all).
    """
    if rows >= declaration.min_rows:
        return PROCEED
    return WAIT if now_ms - since_ms < declaration.cooldown_ms else SKIP


def shadow_expired(now_ms: int, since_ms: int, declaration: AutopilotDeclaration) -> bool:
    """Whether a challenger in shadow since ``since_ms`` is past the declared time limit (0: none)."""
    limit = declaration.shadow_timeout_ms
    return limit > 0 and now_ms - since_ms >= limit
