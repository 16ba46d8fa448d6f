"""Trainer entry points for the autopilot's tests: a useless model, and a slow one to be killed in."""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

from edml.trainer.from_set import train_trips

from edml.pipelines.autopilot import TrainingSet


def train_on_shuffled_labels(training_set: TrainingSet, out_dir: Path, epochs: int = 1, seed: int = 0) -> Path:
    """The taxi trainer on labels shuffled between trips: a model that learned nothing a trip says."""
    durations = [r[training_set.label] for r in training_set.rows]
    random.Random(seed).shuffle(durations)
    rows = [{**r, training_set.label: d} for r, d in zip(training_set.rows, durations, strict=True)]
    return train_trips(dataclasses.replace(training_set, rows=rows), out_dir, epochs=epochs, seed=seed)


def train_slowly(training_set: TrainingSet, out_dir: Path, epochs: int = 1, seed: int = 0,
                 pause_s: float = 0.0) -> Path:
    """The taxi trainer after a pause: a training that lasts long enough to be killed in."""
    time.sleep(pause_s)
    return train_trips(training_set, out_dir, epochs=epochs, seed=seed)
