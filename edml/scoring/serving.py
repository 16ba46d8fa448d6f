"""The models a process serves: a champion and its shadow challengers, swapped atomically.

Scoring is signature-driven: each model input is filled from the TripPickup field of the
same name, with the dtype the signature asks for, and the model is called once per batch.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edml.model_topic.artifact import Manifest
from edml.model_topic.gate import CheckedOutput, check_output, output_problems
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

    def call(self, columns: dict[str, Any]) -> CheckedOutput:
        """One model call on a batch of columns, its output checked row by row.

        Whatever the model raises propagates; an output that is not one float per row is
        reported in ``problem``, never flattened or cut to fit (see ``gate.check_output``).
        """
        import tensorflow as tf

        n = len(columns[self.bindings[0].name])
        padded = -(-n // PAD_ROWS) * PAD_ROWS
        tensors = {}
        for b in self.bindings:
            column = np.asarray(columns[b.name], dtype=b.dtype)
            if padded != n:
                column = np.concatenate([column, np.repeat(column[-1:], padded - n)])
            tensors[b.name] = tf.constant(column)
        checked = check_output(self.function(**tensors), padded)
        if checked.problem is not None or padded == n:
            return checked
        return CheckedOutput(checked.values[:n], None, checked.nonfinite[checked.nonfinite < n])

    def predict_columns(self, columns: dict[str, Any]) -> np.ndarray:
        """Predicted durations (s) as float64; ModelOutputError when the output is not usable."""
        checked = self.call(columns)
        problems = output_problems(checked)
        if problems:
            raise ModelOutputError(problems[0])
        return checked.values

    def predict(self, trips: Sequence[TripPickup]) -> np.ndarray:
        """Predicted durations (s) for ``trips``: one model call for the whole batch."""
        return self.predict_columns(trip_columns(trips, self.bindings))


class ModelOutputError(Exception):
    """A model call's output is not one finite float per row."""


@dataclass(frozen=True)
class ServingSet:
    """What scores now: the champion (to the predictions topic) and challengers (shadow)."""

    champion: LoadedModel
    challengers: tuple[LoadedModel, ...] = ()


def freeze_heap(first: bool = False) -> None:
    """Take what is alive now (TensorFlow, the models) out of the cyclic GC's full collections.

    With TensorFlow and a SavedModel loaded a process holds ~330k tracked objects, and a full
    collection, which the per-batch garbage triggers every few seconds, walks them all: a 200 ms
    stall that every trip in flight waits for. Frozen objects are skipped. Called when a model
    is swapped in, off the scoring path: after the ``first`` freeze the heap is collected once
    (freeing the old model, a stall of that size) and frozen again.
    """
    if not first:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


class ActiveModels:
    """The process's serving set. Workers read it per batch; the model subscriber swaps it.

    The swap is one reference assignment, so a batch is scored by one consistent set.
    """

    def __init__(self) -> None:
        self._current: ServingSet | None = None
        self._changed = threading.Condition()
        self.bootstrapped = threading.Event()
        self._on_faulty: Callable[[LoadedModel, str], None] | None = None
        self._frozen = False  # whether a swap froze the heap already (later swaps collect first)

    def on_faulty(self, handler: Callable[[LoadedModel, str], None]) -> None:
        """Call ``handler(model, reason)`` when scoring finds a serving model faulty (the subscriber quarantines it)."""
        self._on_faulty = handler

    def report_faulty(self, model: LoadedModel, reason: str) -> None:
        """Scoring found ``model`` failing past the declared rate: hand it to the handler."""
        if self._on_faulty is not None:
            self._on_faulty(model, reason)

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
            previous, self._current = self._current, serving
            self._changed.notify_all()
        if serving is not None and serving is not previous:
            freeze_heap(first=not self._frozen)
            self._frozen = True


    def wait_ready(self, timeout: float | None = None) -> ServingSet | None:
        """Block until a serving set is active (or ``timeout``); returns it."""
        with self._changed:
            self._changed.wait_for(self.ready, timeout)
            return self._current
