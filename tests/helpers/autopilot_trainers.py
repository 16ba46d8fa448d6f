"""Trainer entry points for the autopilot's tests: a useless model, a slow one to be killed in, broken ones."""

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


def train_and_raise(training_set: TrainingSet, out_dir: Path) -> Path:
    """A trainer that fails, as one does when its input is not what it expects."""
    raise RuntimeError(f"cannot train on {len(training_set)} rows:\nthe loss is NaN after epoch 1")


def return_an_empty_folder(training_set: TrainingSet, out_dir: Path) -> Path:
    """A trainer that returns a folder without a SavedModel (only its metrics)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text('{"mae": 1.0}')
    return out_dir


def write_a_corrupt_saved_model(training_set: TrainingSet, out_dir: Path) -> Path:
    """A trainer whose folder only looks like a model: a saved_model.pb of junk bytes, no golden rows."""
    (out_dir / "saved_model").mkdir(parents=True, exist_ok=True)
    (out_dir / "saved_model" / "saved_model.pb").write_bytes(b"not a protocol buffer \x00\xff" * 10)
    (out_dir / "metrics.json").write_text('{"mae": 1.0}')
    return out_dir
