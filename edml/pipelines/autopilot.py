"""A pipeline's ``[autopilot]`` table: how its model is retrained without a person, and the training set a trainer gets.

::

    [autopilot]
    trainer = "edml.trainer.from_set:train_trips"   # module:function(training_set, out_dir, **params) -> model folder
    error_threshold = 400.0      # the champion's live loss (MAE; binary: log loss) above it ...
    error_windows = 3            # ... in this many consecutive score windows triggers a run (0: no error trigger)
    margin = 0.05                # promotion: the challenger's live loss below the champion's x (1 - margin)
    shadow_windows = 3           # live windows compared before promoting or retiring the challenger
    shadow_timeout_s = 172800    # a challenger without its K windows after this long is retired (0: no limit)
    data_window_s = 21600        # the training set: the recorded events of this recent span (event time)
    holdout = 0.2                # the newest share of it is held out for the replay gate
    tolerance = 0.05             # the replay gate: the candidate may be this much worse than the champion
    cooldown_s = 3600            # after a run, no trigger for this long (wall clock); a trigger waiting for
                                 # min_rows labelled events waits at most this long
    schedule_s = 86400           # optional: a run at least this often (0: none)
    min_rows = 500               # fewer joined rows: the run waits for more traffic (up to cooldown_s), then skips
    archive = "recordings"       # optional: the recorder's archive (default: <state dir>/autopilot/archive)
    [autopilot.params]           # keyword arguments of the trainer (e.g. epochs = 4)

Durations are seconds (numbers): the data window is event time, the cool-down, the schedule and the
shadow time limit are wall-clock time. Every bad value is a one-line :class:`PipelineError` naming
the pipeline and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edml.core.errors import OperatorError


@dataclass(frozen=True)
class AutopilotDeclaration:
    """The ``[autopilot]`` table of a pipeline (see the module docstring)."""

    trainer: str
    error_threshold: float | None = None
    error_windows: int = 3
    margin: float = 0.05
    shadow_windows: int = 3
    shadow_timeout_ms: int = 2 * 86_400_000  # K windows of an hour or a few, even through a quiet night or two
    data_window_ms: int = 6 * 3_600_000
    holdout: float = 0.2
    tolerance: float = 0.05
    cooldown_ms: int = 3_600_000
    schedule_ms: int = 0
    min_rows: int = 200
    archive: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def trainer_module(self) -> str:
        """The module of the trainer entry point."""
        return self.trainer.split(":", 1)[0]

    @property
    def trainer_function(self) -> str:
        """The function of the trainer entry point."""
        return self.trainer.split(":", 1)[1]


_FLOATS = {"error_threshold": (0.0, None), "margin": (0.0, 1.0), "holdout": (0.0, 1.0), "tolerance": (0.0, None)}
_INTS = {"error_windows": 0, "shadow_windows": 1, "min_rows": 2}
_SECONDS = {"data_window_s": "data_window_ms", "cooldown_s": "cooldown_ms", "schedule_s": "schedule_ms",
            "shadow_timeout_s": "shadow_timeout_ms"}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_autopilot(raw: Any, where: str, base_dir: Path) -> AutopilotDeclaration:
    """The ``[autopilot]`` table ``raw``; ``where`` starts every error ("pipeline NAME (file)")."""

    def error(message: str) -> OperatorError:
        from edml.pipelines.declaration import PipelineError

        return PipelineError(f"{where}: [autopilot] {message}")

    if not isinstance(raw, dict):
        raise error("must be a table")
    data = dict(raw)
    trainer = data.pop("trainer", None)
    if not isinstance(trainer, str) or trainer.count(":") != 1 or not all(trainer.split(":")):
        raise error('needs trainer = "module:function" (e.g. "edml.trainer.from_set:train_trips")')
    values: dict[str, Any] = {"trainer": trainer}
    for key, (low, high) in _FLOATS.items():
        if key in data:
            v = data.pop(key)
            if not _number(v) or v < low or (high is not None and v >= high):
                bounds = f"in [{low:g}, {high:g})" if high is not None else f">= {low:g}"
                raise error(f"{key} must be a number {bounds}, got {v!r}")
            values[key] = float(v)
    for key, low in _INTS.items():
        if key in data:
            v = data.pop(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise error(f"{key} must be a whole number >= {low}, got {v!r}")
            values[key] = v
    for key, target in _SECONDS.items():
        if key in data:
            v = data.pop(key)
            if not _number(v) or v < 0 or (key == "data_window_s" and v == 0):
                raise error(f"{key} must be a number of seconds >= 0{' (above 0)' if key == 'data_window_s' else ''}, "
                            f"got {v!r}")
            values[target] = int(v * 1000)
    if "archive" in data:
        v = data.pop("archive")
        if not isinstance(v, str) or not v:
            raise error("archive must be a folder (a string)")
        values["archive"] = Path(v) if Path(v).is_absolute() else base_dir / v
    params = data.pop("params", {})
    if not isinstance(params, dict):
        raise error("params must be a table [autopilot.params] of the trainer's keyword arguments")
    values["params"] = dict(params)
    if data:
        raise error(f"has unknown key(s) {sorted(data)} (known: trainer, {', '.join([*_FLOATS, *_INTS, *_SECONDS])}, "
                    "archive, params)")
    if values.get("error_threshold") is not None and values.get("error_windows", 3) == 0:
        raise error("error_threshold needs error_windows >= 1")
    return AutopilotDeclaration(**values)


@dataclass(frozen=True)
class TrainingSet:
    """What a trainer entry point gets: recorded events joined with their labels, oldest first.

    ``rows`` are the pipeline's input records (decoded, as dicts) with the label field added under
    ``label``; ``key`` and ``event_time`` name the input fields that key and time them.
    """

    pipeline: str
    rows: list[dict[str, Any]]
    key: str
    event_time: str
    label: str
    task: str
    window_start: int
    window_end: int

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[Any]:
        """One field of every row."""
        return [r.get(name) for r in self.rows]
