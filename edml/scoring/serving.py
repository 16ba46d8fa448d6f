"""The models a process serves: a champion and its shadow challengers, swapped atomically.

Scoring is signature-driven: each model input is filled from the TripPickup field of the
same name, with the dtype the signature asks for, and the model is called once per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edml.model_topic.artifact import Manifest
from edml.schemas.records import ModelRecord, ModelSignature, TripPickup

# dtype names as TensorFlow spells them -> numpy dtype used to build the column
_NUMPY_DTYPES: dict[str, Any] = {
    "int64": np.int64, "int32": np.int32, "float32": np.float32, "float64": np.float64,
    "double": np.float64, "float": np.float32, "string": object, "bool": np.bool_,
}


# CPU kernels compute the rows past the last full SIMD block another way, so a trip's
# prediction would depend on its batch's size. Padding every batch to a multiple of this many
# rows (repeating the last row) makes a prediction a function of the trip alone: a prediction
# re-emitted after recovery, or replayed, is byte-identical.
PAD_ROWS = 16


@dataclass(frozen=True)
class InputBinding:
    """One model input filled from the trip field of the same name."""

    name: str
    dtype: Any


def bind_inputs(signature: ModelSignature) -> tuple[InputBinding, ...]:
    """Bindings of every signature input; the caller has checked the names against the schema."""
    return tuple(InputBinding(s.name, _NUMPY_DTYPES[s.dtype]) for s in signature.inputs)


def trip_columns(trips: Sequence[TripPickup], bindings: Sequence[InputBinding]) -> dict[str, np.ndarray]:
    """Columns of the batch, one per model input, built once per batch."""
    n = len(trips)
    columns = {}
    for b in bindings:
        if b.dtype is object:
            columns[b.name] = np.array([getattr(t, b.name) for t in trips], dtype=object)
        else:
            columns[b.name] = np.fromiter((getattr(t, b.name) for t in trips), dtype=b.dtype, count=n)
    return columns


@dataclass(frozen=True)
class LoadedModel:
    """A loaded SavedModel version ready to score batches."""

    record: ModelRecord
    manifest: Manifest
    function: Any  # the SavedModel's serving_default concrete function
    bindings: tuple[InputBinding, ...]
    output_name: str

    @property
    def name(self) -> str:
        """The model name."""
        return self.record.model_name

    @property
    def version(self) -> str:
        """The model version."""
        return self.record.version

    def predict_columns(self, columns: dict[str, Any]) -> np.ndarray:
        """One model call on a batch of columns; returns the output as float64."""
        import tensorflow as tf

        n = len(columns[self.bindings[0].name])
        padded = -(-n // PAD_ROWS) * PAD_ROWS
        tensors = {}
        for b in self.bindings:
            column = np.asarray(columns[b.name], dtype=b.dtype)
            if padded != n:
                column = np.concatenate([column, np.repeat(column[-1:], padded - n)])
            tensors[b.name] = tf.constant(column)
        out = self.function(**tensors)[self.output_name]
        return np.asarray(out, dtype=np.float64).reshape(-1)[:n]

    def predict(self, trips: Sequence[TripPickup]) -> np.ndarray:
        """Predicted durations (s) for ``trips``: one model call for the whole batch."""
        return self.predict_columns(trip_columns(trips, self.bindings))


@dataclass(frozen=True)
class ServingSet:
    """What scores now: the champion (to the predictions topic) and challengers (shadow)."""

    champion: LoadedModel
    challengers: tuple[LoadedModel, ...] = ()


class ActiveModels:
    """The process's serving set. Workers read it per batch; the model subscriber swaps it.

    The swap is one reference assignment, so a batch is scored by one consistent set.
    """

    def __init__(self) -> None:
        self._current: ServingSet | None = None
        self._changed = threading.Condition()
        self.bootstrapped = threading.Event()

    @property
    def current(self) -> ServingSet | None:
        """The serving set, or None while no model is active."""
        return self._current

    def ready(self) -> bool:
        """True when the model topic was read to its end at start and a champion is active."""
        return self.bootstrapped.is_set() and self._current is not None

    def swap(self, serving: ServingSet | None) -> None:
        """Replace the serving set (None stops scoring: events are then held)."""
        with self._changed:
            self._current = serving
            self._changed.notify_all()

    def wait_ready(self, timeout: float | None = None) -> ServingSet | None:
        """Block until a serving set is active (or ``timeout``); returns it."""
        with self._changed:
            self._changed.wait_for(self.ready, timeout)
            return self._current
