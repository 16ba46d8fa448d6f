"""The controller's progress in its state folder: what survives a restart (or a kill -9).

``<state dir>/autopilot/progress.json``, replaced atomically on every change. The phase says what
a restarted controller does: ``idle`` watches for triggers; ``training`` restarts that run under
its run id (nothing was published: training is redone, the attempt counted); ``waiting`` re-checks
the recorded traffic of a run that found too few labelled events; ``publishing`` knows
the candidate's version before the record is produced, so a restart finds it on the model topic
instead of publishing it twice; ``shadow`` goes on waiting for the candidate's live windows.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

IDLE, WAITING, TRAINING, PUBLISHING, SHADOW = "idle", "waiting", "training", "publishing", "shadow"


@dataclass
class Progress:
    """What the controller has done; written after every change of phase."""

    phase: str = IDLE
    run_id: str = ""
    attempt: int = 0
    trigger: str = ""
    trigger_reason: str = ""
    champion: str = ""
    candidate: str = ""
    windows_seen: int = 0
    shadow_since_ms: int | None = None  # wall clock when the candidate entered the shadow phase
    last_run_ms: int | None = None  # wall clock of the last trigger (a waiting run waits from there)
    last_end_ms: int | None = None  # wall clock of the last decision (the cool-down starts there)
    alerts_seen: int = 0  # alert messages already considered (the alerts topic's first N)
    extra: dict[str, str] = field(default_factory=dict)


def progress_path(state_dir: Path) -> Path:
    """Where the progress of a pipeline's controller is kept."""
    return state_dir / "autopilot" / "progress.json"


def load_progress(state_dir: Path) -> Progress:
    """The kept progress, or a fresh one."""
    try:
        return Progress(**json.loads(progress_path(state_dir).read_text()))
    except FileNotFoundError:
        return Progress()


def save_progress(state_dir: Path, progress: Progress) -> None:
    """Write ``progress`` atomically (a crash leaves the old file or the new one, never half of one)."""
    path = progress_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(asdict(progress), f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
