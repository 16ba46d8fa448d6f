"""The publish gate: a model reaches the topic only if its pipeline can feed it, it reproduces its
golden outputs, and it is not worse than the model that serves now.

Checks, in order (the first failure is the refusal reason, one line):

1. the ``serving_default`` signature fits the pipeline the model is published for: every model
   input fed by a field of a compatible type, every output one the prediction record can hold
   (the pipeline's check is passed in as ``signature_problems``: :mod:`edml.pipelines.signature`);
2. the golden rows shipped with the model give finite outputs equal to the golden outputs
   (within float tolerance) -- the same rows scorers warm up on;
3. its ``mae`` is not worse than the desired model's of that name by more than ``tolerance``
   (relative). ``force`` skips this check only: a model that fails 1 or 2 never publishes.

``check_outputs`` is the one definition of a usable model output, for the gate, warm-up and scoring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from edml.model_topic.artifact import GATE_METRICS
from edml.schemas.records import ModelRecord, ModelSignature, TensorSpec

from edml.core.errors import Refusal

DEFAULT_TOLERANCE = 0.05
GOLDEN_RTOL = 1e-3
GOLDEN_ATOL = 1e-2  # e.g. seconds: float32 round-off on durations of thousands of seconds
_KINDS = {"float16": "f", "bfloat16": "f", "float32": "f", "float64": "f", "int8": "iu", "int16": "iu", "int32": "iu",
          "int64": "iu", "uint8": "iu", "uint16": "iu", "bool": "b", "string": "OSU"}
SignatureCheck = Callable[[ModelSignature], list[str]]


class GateRefused(Refusal):
    """The gate refused a model; ``reason`` is one line."""


@dataclass(frozen=True)
class CheckedOutput:
    """A model call's outputs checked against the signature and the rows it was given.

    ``problem`` (one line) is set when the output as a whole is unusable: an output missing, a
    wrong length or width, a dtype that is not the signature's. Otherwise ``values`` maps each
    output's name to its array (``(n,)`` or ``(n, k)``; floats as float64, strings as ``str``)
    and ``nonfinite`` holds the rows where a float output is NaN or infinite.
    """

    values: Any  # dict[str, np.ndarray], or None with a problem
    problem: str | None
    nonfinite: Any  # np.ndarray of int64 row indices

    @property
    def first(self) -> np.ndarray:
        """The first output's values."""
        return next(iter(self.values.values()))


def _unusable(problem: str) -> CheckedOutput:
    return CheckedOutput(None, problem, np.empty(0, dtype=np.int64))


def _width(spec: TensorSpec) -> int:
    return spec.shape[1] if len(spec.shape) == 2 and spec.shape[1] > 0 else 1


def check_outputs(result: Any, n: int, outputs: Sequence[TensorSpec]) -> CheckedOutput:
    """The outputs the serving function returned for ``n`` rows, checked against the signature's ``outputs``.

    ``result`` is a dict of tensors (or one tensor for a one-output signature). Each output must be
    there with the signature's kind of dtype and shape ``(n,)`` (or ``(n, 1)``) for a scalar,
    ``(n, k)`` for a vector of k; never flattened or cut to fit.
    """
    if not isinstance(result, dict):
        if len(outputs) != 1:
            return _unusable(f"the model returned one tensor, its signature declares {len(outputs)} outputs")
        result = {outputs[0].name: result}
    values: dict[str, np.ndarray] = {}
    bad = np.zeros(n, dtype=bool)
    for spec in outputs:
        if spec.name not in result:
            return _unusable(f"the model returned no output {spec.name} (it returned {sorted(result)})")
        try:
            array = np.asarray(result[spec.name])
        except Exception as e:  # noqa: BLE001 - whatever the output object is, it is not usable
            return _unusable(f"output {spec.name} does not convert to an array: {type(e).__name__}")
        kinds = _KINDS.get(spec.dtype, "f")
        if array.dtype.kind not in kinds:
            return _unusable(f"output {spec.name} is {array.dtype}, its signature says {spec.dtype}")
        width = _width(spec)
        if width == 1 and array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        expected = (n,) if width == 1 else (n, width)
        if array.shape != expected:
            return _unusable(f"output {spec.name} has shape {list(array.shape)} for {n} rows, expected "
                             f"{list(expected)}")
        if array.dtype.kind == "f":
            array = array.astype(np.float64)
            finite = np.isfinite(array)
            bad |= ~(finite if finite.ndim == 1 else finite.all(axis=1))
        elif array.dtype.kind in "OS":
            array = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.ravel()],
                             dtype=object).reshape(array.shape)
        values[spec.name] = array
    return CheckedOutput(values, None, np.flatnonzero(bad))


def output_problems(checked: CheckedOutput) -> list[str]:
    """Why a checked output is not usable as a whole, non-finite values included (empty when usable)."""
    if checked.problem is not None:
        return [checked.problem]
    if len(checked.nonfinite):
        rows = len(checked.first)
        return [f"the model returned non-finite (NaN/inf) outputs for {len(checked.nonfinite)} of {rows} rows"]
    return []


def expected_golden(golden_outputs: Any, outputs: Sequence[TensorSpec]) -> dict[str, list[Any]]:
    """The golden outputs by output name: a list is the first output's, a dict names each."""
    if isinstance(golden_outputs, dict):
        return {str(k): list(v) for k, v in golden_outputs.items()}
    return {outputs[0].name: list(golden_outputs)} if outputs else {}


def golden_mismatch(checked: CheckedOutput, expected: dict[str, list[Any]], *, rtol: float = GOLDEN_RTOL,
                    atol: float = GOLDEN_ATOL) -> str | None:
    """How the checked outputs differ from the ``expected`` golden outputs (None when they match)."""
    for name, want_list in expected.items():
        got = checked.values.get(name)
        if got is None:
            return f"golden outputs name {name}, which the model does not return"
        want = np.asarray(want_list, dtype=got.dtype if got.dtype.kind != "f" else np.float64)
        if want.shape != got.shape:
            return f"golden output {name} has shape {list(want.shape)}, the model gives {list(got.shape)}"
        off = (np.abs(got - want) > atol + rtol * np.abs(want)) if got.dtype.kind == "f" else (got != want)
        if off.ndim > 1:
            off = off.any(axis=1)
        if off.any():
            i = int(np.argmax(off))
            return (f"{int(off.sum())} of {len(off)} golden rows differ on {name}, e.g. row {i}: got {got[i]}, "
                    f"expected {want[i]}")
    return None


def golden_problems(
    serving_fn: Any,
    signature: ModelSignature,
    golden_inputs: dict[str, list],
    golden_outputs: Any,
    *,
    rtol: float = GOLDEN_RTOL,
    atol: float = GOLDEN_ATOL,
) -> list[str]:
    """Run the golden rows through ``serving_fn``; what went wrong (empty when all match)."""
    import tensorflow as tf

    expected = expected_golden(golden_outputs, signature.outputs)
    n = len(next(iter(expected.values()), []))
    if n == 0:
        return ["no golden rows to check the model with"]
    feed = {}
    for spec in signature.inputs:
        values = golden_inputs.get(spec.name)
        if values is None:
            return [f"golden rows lack input {spec.name}"]
        if len(values) != n:
            return [f"golden input {spec.name} has {len(values)} rows, golden outputs {n}"]
        try:
            feed[spec.name] = tf.constant(values, dtype=tf.as_dtype(spec.dtype))
        except (TypeError, ValueError) as e:
            return [f"golden input {spec.name} does not convert to {spec.dtype}: {e}"]
    try:
        result = serving_fn(**feed)
    except Exception as e:  # any TF error here means the model cannot score events
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        return [f"the model failed on the golden rows: {type(e).__name__}: {first}"]
    checked = check_outputs(result, n, signature.outputs)
    problems = output_problems(checked)
    if problems:
        return [p + " (golden rows)" for p in problems]
    mismatch = golden_mismatch(checked, expected, rtol=rtol, atol=atol)
    return [mismatch] if mismatch else []


def metric_problem(metrics: dict[str, float], current: ModelRecord | None, tolerance: float) -> str | None:
    """Why ``metrics`` are worse than ``current``'s beyond ``tolerance`` (relative), else None.

    The metric compared is the first of :data:`GATE_METRICS` the model reports (``mae`` for a
    regression, ``log_loss`` for a classifier, ...), against the same metric of ``current``.
    """
    name = next((m for m in GATE_METRICS if m in metrics), None)
    value = metrics.get(name) if name else None
    if name is None or value is None or not math.isfinite(value):
        return f"the model's metrics have no finite {' or '.join(GATE_METRICS)}"
    if current is None:
        return None
    old = current.metrics.get(name)
    if old is None or not math.isfinite(old) or old <= 0:
        return None
    higher_better = GATE_METRICS[name]
    worse = (old - value) / old if higher_better else (value - old) / old
    if worse > tolerance:
        return (
            f"{name} {value:.3f} is {worse:.1%} worse than {current.version}'s {old:.3f} "
            f"(tolerance {tolerance:.1%}; --force publishes anyway)"
        )
    return None


@dataclass
class GateResult:
    """What the gate found: the checks passed, and what ``force`` waved through."""

    compared_with: str | None
    forced_reason: str | None = None


def check(
    serving_fn: Any,
    signature: ModelSignature,
    golden_inputs: dict[str, list],
    golden_outputs: Any,
    metrics: dict[str, float],
    current: ModelRecord | None,
    *,
    signature_problems: SignatureCheck,
    tolerance: float = DEFAULT_TOLERANCE,
    force: bool = False,
) -> GateResult:
    """Run every check; raises :class:`GateRefused` with the first reason.

    ``signature_problems``: what keeps a model with a signature from scoring the pipeline it is
    published for (empty when it fits).
    """
    problems = signature_problems(signature)
    if problems:
        raise GateRefused("the pipeline cannot feed this model: " + "; ".join(problems))
    problems = golden_problems(serving_fn, signature, golden_inputs, golden_outputs)
    if problems:
        raise GateRefused("golden check failed: " + "; ".join(problems))
    reason = metric_problem(metrics, current, tolerance)
    if reason and not force:
        raise GateRefused(reason)
    return GateResult(compared_with=current.version if current else None, forced_reason=reason)
