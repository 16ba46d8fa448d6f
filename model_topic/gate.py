"""The publish gate: a model reaches the topic only if it fits the trip schema, reproduces its
golden outputs, and is not worse than the model that serves now.

Checks, in order (the first failure is the refusal reason, one line):

1. the ``serving_default`` signature takes exactly the TripPickup fields except ``trip_id``,
   each rank 1 with an unknown batch dimension and a compatible dtype, and returns one float;
2. the golden rows shipped with the model give finite outputs equal to the golden outputs
   (within float tolerance) -- the same rows scorers warm up on;
3. its ``mae`` is not worse than the desired model's of that name by more than ``tolerance``
   (relative). ``force`` skips this check only: a model that fails 1 or 2 never publishes.

``signature_problems`` and ``golden_problems`` are pure enough for scorers to reuse.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from edml.schemas.records import ModelRecord, ModelSignature, TripPickup

from edml.core.errors import Refusal

DEFAULT_TOLERANCE = 0.05
GOLDEN_RTOL = 1e-3
GOLDEN_ATOL = 1e-2  # seconds; float32 round-off on durations of thousands of seconds
_DTYPES_FOR = {
    "int": ("int32", "int64"),
    "float": ("float32", "float64"),
    "str": ("string",),
}
FLOAT_OUTPUTS = ("float32", "float64")


class GateRefused(Refusal):
    """The gate refused a model; ``reason`` is one line."""


def expected_inputs() -> dict[str, tuple[str, ...]]:
    """TripPickup field -> dtypes a model input for it may have (``trip_id`` is not a feature)."""
    out = {}
    for f in dataclasses.fields(TripPickup):
        if f.name == "trip_id":
            continue
        out[f.name] = _DTYPES_FOR[f.type if isinstance(f.type, str) else f.type.__name__]
    return out


def signature_problems(signature: ModelSignature) -> list[str]:
    """What is wrong with ``signature`` for scoring trips (empty when it fits)."""
    problems = []
    expected = expected_inputs()
    given = {s.name: s for s in signature.inputs}
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing:
        problems.append(f"inputs missing {missing}")
    if extra:
        problems.append(f"unexpected inputs {extra} (inputs must be exactly the TripPickup fields but trip_id)")
    for name in sorted(set(expected) & set(given)):
        spec = given[name]
        if spec.dtype not in expected[name]:
            problems.append(f"input {name} is {spec.dtype}, expected one of {list(expected[name])}")
        if len(spec.shape) != 1 or spec.shape[0] not in (-1,):
            problems.append(f"input {name} has shape {spec.shape}, expected [-1] (a batch of scalars)")
    if len(signature.outputs) != 1:
        problems.append(f"expected one output, found {len(signature.outputs)}")
    elif signature.outputs[0].dtype not in FLOAT_OUTPUTS:
        problems.append(f"output {signature.outputs[0].name} is {signature.outputs[0].dtype}, expected a float")
    return problems


@dataclass(frozen=True)
class CheckedOutput:
    """A model call's output checked against the rows it was given.

    ``problem`` (one line) is set when the output as a whole is unusable: not one float per
    row (a wrong length, a second column, a non-float dtype). Otherwise ``values`` holds one
    float64 per row and ``nonfinite`` the indices of rows whose value is NaN or infinite.
    """

    values: Any  # np.ndarray of float64, shape (n,), or None with a problem
    problem: str | None
    nonfinite: Any  # np.ndarray of int64 row indices


def check_output(result: Any, n: int) -> CheckedOutput:
    """The one definition of a usable model output, for the publish gate, warm-up and scoring.

    ``result`` is what the serving function returned for ``n`` rows (a dict of tensors or a
    tensor). Usable means exactly one output of a float dtype with shape ``(n,)`` or ``(n, 1)``;
    never flattened or cut to fit.
    """
    import numpy as np

    none = np.empty(0, dtype=np.int64)
    if isinstance(result, dict):
        if len(result) != 1:
            return CheckedOutput(None, f"the model returned {len(result)} outputs, expected one", none)
        result = next(iter(result.values()))
    try:
        array = np.asarray(result)
    except Exception as e:  # noqa: BLE001 - whatever the output object is, it is not usable
        return CheckedOutput(None, f"the model output does not convert to an array: {type(e).__name__}", none)
    if array.dtype.kind != "f":
        return CheckedOutput(None, f"the model returned {array.dtype} values, expected floats", none)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (n,):
        return CheckedOutput(None, f"the model returned shape {list(array.shape)} for {n} rows, expected [{n}]",
                             none)
    values = array.astype(np.float64)
    return CheckedOutput(values, None, np.flatnonzero(~np.isfinite(values)))


def output_problems(checked: CheckedOutput) -> list[str]:
    """Why a checked output is not usable as a whole, non-finite values included (empty when usable)."""
    if checked.problem is not None:
        return [checked.problem]
    if len(checked.nonfinite):
        return [f"the model returned {len(checked.nonfinite)} non-finite (NaN/inf) outputs "
                f"for {len(checked.values)} rows"]
    return []


def golden_problems(
    serving_fn: Any,
    signature: ModelSignature,
    golden_inputs: dict[str, list],
    golden_outputs: list[float],
    *,
    rtol: float = GOLDEN_RTOL,
    atol: float = GOLDEN_ATOL,
) -> list[str]:
    """Run the golden rows through ``serving_fn``; what went wrong (empty when all match)."""
    import numpy as np
    import tensorflow as tf

    n = len(golden_outputs)
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
    except Exception as e:  # any TF error here means the model cannot score trips
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        return [f"the model failed on the golden rows: {type(e).__name__}: {first}"]
    checked = check_output(result, n)
    problems = output_problems(checked)
    if problems:
        return [p + " (golden rows)" for p in problems]
    got = checked.values
    want = np.asarray(golden_outputs, dtype=np.float64)
    off = np.abs(got - want) > atol + rtol * np.abs(want)
    if off.any():
        i = int(np.argmax(off))
        return [
            f"{int(off.sum())} of {n} golden outputs differ, e.g. row {i}: got {got[i]:.4f}, expected {want[i]:.4f}"
        ]
    return []


def metric_problem(metrics: dict[str, float], current: ModelRecord | None, tolerance: float) -> str | None:
    """Why ``metrics`` are worse than ``current``'s mae beyond ``tolerance`` (relative), else None."""
    mae = metrics.get("mae")
    if mae is None or not math.isfinite(mae):
        return "the model's metrics have no finite mae"
    if current is None:
        return None
    old = current.metrics.get("mae")
    if old is None or not math.isfinite(old) or old <= 0:
        return None
    worse = (mae - old) / old
    if worse > tolerance:
        return (
            f"mae {mae:.3f} is {worse:.1%} worse than {current.version}'s {old:.3f} "
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
    golden_outputs: list[float],
    metrics: dict[str, float],
    current: ModelRecord | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    force: bool = False,
) -> GateResult:
    """Run every check; raises :class:`GateRefused` with the first reason."""
    problems = signature_problems(signature)
    if problems:
        raise GateRefused("signature does not match the TripPickup schema: " + "; ".join(problems))
    problems = golden_problems(serving_fn, signature, golden_inputs, golden_outputs)
    if problems:
        raise GateRefused("golden check failed: " + "; ".join(problems))
    reason = metric_problem(metrics, current, tolerance)
    if reason and not force:
        raise GateRefused(reason)
    return GateResult(compared_with=current.version if current else None, forced_reason=reason)
