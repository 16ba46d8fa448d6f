"""Per-field constraints of a pipeline, and checking a whole batch of columns against them at once.

A constraint is declared (a range, allowed values, a length bound, required) or ``infer``-red
from the model's training reference in its manifest: a numeric field's training range (``min``
and ``max`` of the reference) widened by a margin of its width, a categorical field's categories
when the reference lists all of them. A row that breaks one is a dead letter whose reason names
the field; the rest of the batch is scored. Checks are numpy operations over the columns, so a
batch of thousands costs a few of them per constraint, not a Python call per row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edml.schemas.columnar import FieldSpec

NUMERIC = ("int", "long", "float", "double")
TEXT = ("string", "bytes")
CATEGORICAL = ("string", "enum", "int", "long", "boolean")
DEFAULT_MARGIN = 0.1  # an inferred range: the training range widened by 10% of its width each way


class ReferenceProblem(ValueError):
    """A model's reference that cannot give an inferred constraint; one line, naming the field."""


@dataclass(frozen=True)
class Constraint:
    """What one field's values must be. Several bounds may be set; ``infer`` asks the model's reference."""

    field: str
    range: tuple[float, float] | None = None  # inclusive; NaN is outside every range
    allowed: tuple[Any, ...] | None = None
    min_length: int | None = None  # characters of a string, bytes of bytes
    max_length: int | None = None
    required: bool = False  # not null (a nullable field)
    infer: bool = False
    margin: float = DEFAULT_MARGIN

    def describe(self) -> str:
        """The constraint as one short phrase, e.g. ``range 1..265, required``."""
        parts = []
        if self.range is not None:
            parts.append(f"range {_num(self.range[0])}..{_num(self.range[1])}")
        if self.allowed is not None:
            parts.append(f"one of {list(self.allowed)}")
        if self.min_length is not None or self.max_length is not None:
            parts.append(f"length {self.min_length or 0}..{'' if self.max_length is None else self.max_length}")
        if self.required:
            parts.append("required")
        if self.infer:
            parts.append(f"inferred from the model's reference (margin {self.margin:g})")
        return ", ".join(parts) or "none"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def constraint_problems(c: Constraint, spec: FieldSpec | None) -> list[str]:
    """What is wrong with constraint ``c`` for a field of ``spec`` (None: no such field)."""
    if spec is None:
        return [f"a constraint on field {c.field}, which the input schema does not have"]
    t = spec.type
    out = []
    if c.range is not None and t not in NUMERIC:
        out.append(f"field {c.field} is {spec.describe()}: a range needs a number")
    if c.range is not None and not c.range[0] <= c.range[1]:
        out.append(f"field {c.field}: range {list(c.range)} is empty")
    if (c.min_length is not None or c.max_length is not None) and t not in TEXT:
        out.append(f"field {c.field} is {spec.describe()}: a length bound needs a string or bytes")
    if c.allowed is not None:
        if t not in CATEGORICAL:
            out.append(f"field {c.field} is {spec.describe()}: allowed values need a string, enum, int or boolean")
        elif t == "enum" and (unknown := [v for v in c.allowed if v not in spec.symbols]):
            out.append(f"field {c.field}: allowed values {unknown} are not symbols of its enum")
        elif t in ("string", "enum") and not all(isinstance(v, str) for v in c.allowed):
            out.append(f"field {c.field}: allowed values of a {t} must be strings")
        elif t in ("int", "long") and not all(isinstance(v, int) and not isinstance(v, bool) for v in c.allowed):
            out.append(f"field {c.field}: allowed values of an {t} must be integers")
    if c.infer and t not in NUMERIC + ("string", "enum"):
        out.append(f"field {c.field} is {spec.describe()}: only numbers and categories can be inferred")
    if c.required and not spec.nullable:
        pass  # a field that cannot be null is always there
    return out


def infer_constraint(c: Constraint, spec: FieldSpec, reference: dict[str, Any]) -> Constraint:
    """``c`` with its ``infer`` replaced by what the model's ``reference`` (manifest) says of the field.

    Numeric reference: ``{"kind": "numeric", "min": .., "max": .., ...}`` gives the range widened by
    ``margin`` x its width (integers rounded outwards). Categorical: ``{"kind": "categorical",
    "values": [...], "fractions": [...]}`` (or ``"fractions": {value: fraction}``) gives the allowed
    values, when it lists every category it saw (no ``other`` share). Raises :class:`ReferenceProblem`.
    """
    if not c.infer:
        return c
    entry = reference.get(c.field)
    if not isinstance(entry, dict):
        raise ReferenceProblem(f"field {c.field}: the model's reference has no distribution to infer a constraint from")
    kind = entry.get("kind")
    if spec.type in NUMERIC:
        lo, hi = entry.get("min"), entry.get("max")
        if kind != "numeric" or not isinstance(lo, int | float) or not isinstance(hi, int | float) or not (
                _finite(lo) and _finite(hi) and lo <= hi):
            raise ReferenceProblem(f"field {c.field}: the model's reference has no numeric min and max to infer a "
                                   "range from")
        width = (hi - lo) or abs(hi) or 1.0
        low, high = lo - c.margin * width, hi + c.margin * width
        if spec.type in ("int", "long"):
            low, high = math.floor(low), math.ceil(high)
        return replace(c, infer=False, range=(low, high))
    values, fractions = _categories(entry)
    if kind != "categorical" or values is None:
        raise ReferenceProblem(f"field {c.field}: the model's reference has no categories to infer allowed values from")
    if fractions.get("other", 0.0) > 0:  # the trainer's bucket of every category past its top ones
        raise ReferenceProblem(f"field {c.field}: the model's reference lists only its most frequent categories "
                               "(an 'other' share), so the allowed values cannot be inferred; declare them")
    allowed = tuple(v for v in values if v != "other")
    return replace(c, infer=False, allowed=allowed)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _categories(entry: dict[str, Any]) -> tuple[list[Any] | None, dict[Any, float]]:
    fractions = entry.get("fractions")
    if isinstance(fractions, dict):
        return list(fractions), {k: float(v) for k, v in fractions.items()}
    values = entry.get("values")
    if isinstance(values, list) and isinstance(fractions, list) and len(values) == len(fractions):
        return values, {v: float(f) for v, f in zip(values, fractions, strict=True)}
    return None, {}


def resolve(constraints: Sequence[Constraint], fields: dict[str, FieldSpec],
            reference: dict[str, Any]) -> tuple[Constraint, ...]:
    """The constraints with every ``infer`` resolved from a model's ``reference``; raises :class:`ReferenceProblem`."""
    return tuple(infer_constraint(c, fields[c.field], reference) for c in constraints)


@dataclass
class Violations:
    """Which rows of a batch break a constraint: ``ok`` per row, and the first reason of each other row."""

    ok: np.ndarray
    reasons: dict[int, str] = field(default_factory=dict)


def check_columns(columns: dict[str, np.ndarray], nulls: dict[str, np.ndarray],
                  constraints: Sequence[Constraint], n: int) -> Violations:
    """Check ``n`` rows of ``columns`` (as :class:`~edml.schemas.columnar.DecodedColumns` holds them).

    A row's reason is that of the first constraint it breaks, in declaration order, and names the
    field and the value: ``humidity_pct 150 is out of range 0..100``. Null values pass every
    constraint but ``required``. Unresolved ``infer`` constraints are ignored (resolve them first).
    """
    out = Violations(np.ones(n, dtype=bool))
    for c in constraints:
        values = columns[c.field]
        absent = nulls.get(c.field)
        if c.required and absent is not None:
            _fail(out, absent, lambda i, f=c.field: f"{f} is required but null")
        present = None if absent is None else ~absent
        if c.range is not None:
            lo, hi = c.range
            with np.errstate(invalid="ignore"):
                bad = ~((values >= lo) & (values <= hi))
            span = f"{_num(lo)}..{_num(hi)}"
            _fail(out, bad if present is None else bad & present,
                  lambda i, f=c.field, v=values, s=span: f"{f} {_show(v[i])} is out of range {s}")
        if c.min_length is not None or c.max_length is not None:
            lengths = np.fromiter((0 if v is None else len(v) for v in values), dtype=np.int64, count=n)
            bad = np.zeros(n, dtype=bool)
            if c.min_length is not None:
                bad |= lengths < c.min_length
            if c.max_length is not None:
                bad |= lengths > c.max_length
            limit = f"{c.min_length or 0}..{'' if c.max_length is None else c.max_length}"
            _fail(out, bad if present is None else bad & present,
                  lambda i, f=c.field, k=lengths, lim=limit: f"{f} has length {int(k[i])}, expected {lim}")
        if c.allowed is not None:
            allowed = set(c.allowed)
            bad = ~np.fromiter((v in allowed for v in values.tolist()), dtype=bool, count=n)
            _fail(out, bad if present is None else bad & present,
                  lambda i, f=c.field, v=values: f"{f} {_show(v[i])} is not one of the allowed values")
    return out


def _show(value: Any) -> str:
    if isinstance(value, str | bytes):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


def _fail(out: Violations, bad: np.ndarray, reason: Any) -> None:
    bad = bad & out.ok
    if bad.any():
        for i in np.flatnonzero(bad).tolist():
            out.reasons[i] = reason(i)
        out.ok &= ~bad


def violated_fields(columns: dict[str, np.ndarray], nulls: dict[str, np.ndarray],
                    constraints: Sequence[Constraint], n: int) -> dict[str, np.ndarray]:
    """Field -> which of ``n`` rows break a constraint on it (only fields some row breaks).

    What a fallback needs to know: whether a row is invalid only on fields the fallback model does not read.
    """
    out: dict[str, np.ndarray] = {}
    for c in constraints:
        bad = ~check_columns(columns, nulls, [c], n).ok
        if bad.any():
            out[c.field] = out[c.field] | bad if c.field in out else bad
    return out
