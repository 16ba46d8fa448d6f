"""The models a process serves: a champion and its shadow challengers, swapped atomically.

Scoring is signature-driven: each model input is filled from the pipeline's record field that
feeds it (``[inputs]``, by default the field of the same name), with the dtype the signature
asks for, and the model is called once per batch.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edml.model_topic.artifact import Manifest
from edml.model_topic.gate import CheckedOutput, check_outputs, output_problems
from edml.pipelines.constraints import Constraint
from edml.schemas.records import ModelRecord, ModelSignature, TensorSpec

# dtype names as TensorFlow spells them -> numpy dtype used to build the column
_NUMPY_DTYPES: dict[str, Any] = {
    "int64": np.int64, "int32": np.int32, "float32": np.float32, "float64": np.float64,
    "double": np.float64, "float": np.float32, "string": object, "bool": np.bool_,
}


# CPU kernels compute the rows past the last full SIMD block another way, so an event's
# prediction would depend on its batch's size. Padding every batch to a multiple of this many
# rows (repeating the last row) makes a prediction a function of the event alone: a prediction
# re-emitted after recovery, or replayed, is byte-identical.
PAD_ROWS = 16


@dataclass(frozen=True)
class InputBinding:
    """One model input and the record field that fills it."""

    name: str
    dtype: Any
    field: str = ""  # empty: the field of the input's name

    @property
    def source(self) -> str:
        """The record field (column) this input reads."""
        return self.field or self.name


def bind_inputs(signature: ModelSignature, fields: dict[str, str] | None = None) -> tuple[InputBinding, ...]:
    """Bindings of every signature input (``fields``: model input -> record field where they differ)."""
    fields = fields or {}
    return tuple(InputBinding(s.name, _NUMPY_DTYPES[s.dtype], fields.get(s.name, "")) for s in signature.inputs)


@dataclass(frozen=True)
class LoadedModel:
    """A loaded SavedModel version ready to score batches of a pipeline's columns."""

    record: ModelRecord
    manifest: Manifest
    function: Any  # the SavedModel's serving_default concrete function
    bindings: tuple[InputBinding, ...]
    outputs: tuple[TensorSpec, ...]
    # (prediction field, model output name), in the prediction record's order
    output_fields: tuple[tuple[str, str], ...] = ()
    prediction_schema: dict[str, Any] = field(default_factory=dict)
    # constraints inferred from this model's reference: rows outside are dead letters for this model
    constraints: tuple[Constraint, ...] = ()

    @property
    def name(self) -> str:
        """The model name."""
        return self.record.model_name

    @property
    def version(self) -> str:
        """The model version."""
        return self.record.version

    @property
    def output_name(self) -> str:
        """The first output: what a single number per event (a report, a benchmark) is read from."""
        return self.outputs[0].name

    def call(self, columns: dict[str, Any]) -> CheckedOutput:
        """One model call on a batch of columns (by record field), its outputs checked against the signature.

        Whatever the model raises propagates; an output that does not fit the signature is
        reported in ``problem``, never flattened or cut to fit (see ``gate.check_outputs``).
        """
        import tensorflow as tf

        n = len(columns[self.bindings[0].source])
        padded = -(-n // PAD_ROWS) * PAD_ROWS
        tensors = {}
        for b in self.bindings:
            column = np.asarray(columns[b.source], dtype=b.dtype)
            if padded != n:
                column = np.concatenate([column, np.repeat(column[-1:], padded - n)])
            tensors[b.name] = tf.constant(column)
        checked = check_outputs(self.function(**tensors), padded, self.outputs)
        if checked.problem is not None or padded == n:
            return checked
        return CheckedOutput({k: v[:n] for k, v in checked.values.items()}, None,
                             checked.nonfinite[checked.nonfinite < n])

    def predict_columns(self, columns: dict[str, Any]) -> np.ndarray:
        """The first output as float64; ModelOutputError when the output is not usable."""
        checked = self.call(columns)
        problems = output_problems(checked)
        if problems:
            raise ModelOutputError(problems[0])
        return np.asarray(checked.values[self.output_name], dtype=np.float64)


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
