"""Drift: each window's distribution of a feature against the model's reference, as a PSI.

The reference is what the trainer wrote in ``reference.json`` (and the artifact manifest):

* numeric ``{"kind": "numeric", "edges": [inner cut points], "fractions": [len(edges) + 1]}``,
  bin i holding ``edges[i-1] < x <= edges[i]`` with both outer bins open (a list of outer edges
  with ``len(fractions) == len(edges) - 1`` is read too; values outside land in the end bins);
* categorical ``{"kind": "categorical", "values": [...], "fractions": [...]}`` whose last value
  may be ``"other"`` (it takes every unlisted value), or ``{"fractions": {value: fraction}}``.

The population stability index of a window is ``sum((a - e) * ln(a / e))`` over the bins, with
actual fractions ``a`` and expected ``e`` both floored at ``EPSILON`` so that an empty bin
counts as a large, finite difference.

Features: every model input the reference has a distribution for, read from the pipeline's input
events (windowed by their event time), the label field (the target, windowed by the label's time),
and the hour of day of the event time (``<name>_hour`` for an event-time field ``<name>_time``),
compared only when the window is a whole number of days: a shorter window holds part of the day
and would always differ from a whole-day reference.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edml.schemas.records import DriftAlert

from edml.core.errors import OperatorError

log = logging.getLogger("edml.evaluation")
EPSILON = 1e-4
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
OTHER = "other"


class BadReference(OperatorError):
    """A reference distribution file that cannot be used; the message says which part is wrong."""


INPUTS = "inputs"  # the side of an observation: an input event ...
TARGET = "target"  # ... or a label


def hour_feature(event_time_field: str) -> str:
    """The name of the hour-of-day feature of an event-time field: ``x_time`` -> ``x_hour``."""
    return event_time_field.removesuffix("_time") + "_hour"


@dataclass(frozen=True, slots=True)
class Observation:
    """The compared values of one input event (side ``inputs``) or one label (``target``), at its event time."""

    side: str
    time: int
    values: dict[str, Any]


@dataclass(frozen=True)
class DriftFeatures:
    """Which features of a pipeline's events and labels are compared, and how they are read.

    ``inputs``: feature (a model input) -> the input record's field; ``hour``: the hour-of-day feature
    of the event time (empty: none); ``target``: the label field (empty: none).
    """

    inputs: dict[str, str]
    event_time: str
    hour: str = ""
    target: str = ""

    @property
    def names(self) -> set[str]:
        """Every feature a reference may describe."""
        return set(self.inputs) | {n for n in (self.hour, self.target) if n}

    @property
    def seasonal(self) -> dict[str, int]:
        """Feature -> the period a window must be a multiple of to compare it."""
        return {self.hour: DAY_MS} if self.hour else {}

    def of_event(self, event: dict[str, Any], time: int) -> Observation:
        """The input features of one decoded input event."""
        values = {feature: event.get(name) for feature, name in self.inputs.items()}
        if self.hour:
            values[self.hour] = (time % DAY_MS) // HOUR_MS
        return Observation(INPUTS, time, values)

    def of_label(self, label: dict[str, Any], time: int) -> Observation:
        """The target feature of one decoded label."""
        return Observation(TARGET, time, {self.target: label.get(self.target)} if self.target else {})


@dataclass(frozen=True)
class FeatureReference:
    """The reference distribution of one feature, as bins with expected fractions."""

    feature: str
    kind: str
    labels: tuple[str, ...]
    expected: tuple[float, ...]
    edges: tuple[float, ...] = ()
    index: dict[str, int] = field(default_factory=dict)
    other: int | None = None

    def bin_of(self, value: Any) -> int | None:
        """The bin of ``value``; None for a category the reference has no bin for."""
        if value is None:
            return None
        if self.kind == "numeric":
            x = float(value)
            if math.isnan(x):
                return None
            return int(np.searchsorted(self.edges, x, side="left"))
        for name in _category_names(value):
            if name in self.index:
                return self.index[name]
        return self.other

    @property
    def bins(self) -> int:
        """Number of bins (unlisted categories without an "other" bin get one more)."""
        return len(self.expected) + (1 if self.kind == "categorical" and self.other is None else 0)


def _category_names(value: Any) -> tuple[str, ...]:
    """How a reference may spell a category: a label read as 1.0 may be listed as "1", a boolean as "true"."""
    if isinstance(value, bool):
        return (str(value).lower(), str(value), str(int(value)))
    if isinstance(value, float) and value.is_integer():
        return (str(value), str(int(value)))
    return (str(value),)


def _numeric(feature: str, spec: dict[str, Any]) -> FeatureReference:
    edges = [float(e) for e in spec["edges"]]
    fractions = [float(f) for f in spec["fractions"]]
    if len(fractions) == len(edges) - 1:  # outer edges given: the end bins take what lies beyond
        edges = edges[1:-1]
    if len(fractions) != len(edges) + 1:
        raise BadReference(f"{feature}: {len(edges)} inner edges need {len(edges) + 1} fractions, got {len(fractions)}")
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise BadReference(f"{feature}: edges must increase")
    labels = [f"<={edges[0]:g}"] if edges else ["all"]
    labels += [f"({a:g},{b:g}]" for a, b in zip(edges, edges[1:], strict=False)]
    if edges:
        labels.append(f">{edges[-1]:g}")
    return FeatureReference(feature, "numeric", tuple(labels), tuple(fractions), edges=tuple(edges))


def _categorical(feature: str, spec: dict[str, Any]) -> FeatureReference:
    fractions = spec["fractions"]
    if isinstance(fractions, dict):
        values, fracs = [str(v) for v in fractions], [float(f) for f in fractions.values()]
    else:
        values, fracs = [str(v) for v in spec["values"]], [float(f) for f in fractions]
    if len(values) != len(fracs):
        raise BadReference(f"{feature}: {len(values)} values but {len(fracs)} fractions")
    index = {v: i for i, v in enumerate(values)}
    other = index.get(OTHER)
    labels = tuple(values) + (() if other is not None else (OTHER,))
    return FeatureReference(feature, "categorical", labels, tuple(fracs), index=index, other=other)


def feature_reference(feature: str, spec: dict[str, Any]) -> FeatureReference:
    """Read one feature's entry of ``reference.json``; raises :class:`BadReference`."""
    try:
        kind = spec.get("kind", "categorical" if isinstance(spec.get("fractions"), dict) else None)
        if kind == "numeric":
            ref = _numeric(feature, spec)
        elif kind == "categorical":
            ref = _categorical(feature, spec)
        else:
            raise BadReference(f"{feature}: kind must be numeric or categorical, got {kind!r}")
    except (KeyError, TypeError, ValueError) as e:
        raise BadReference(f"{feature}: malformed reference entry ({type(e).__name__}: {e})") from None
    if any(f < 0 or not math.isfinite(f) for f in ref.expected) or not 0.98 <= sum(ref.expected) <= 1.02:
        raise BadReference(f"{feature}: fractions must be >= 0 and sum to 1, got sum {sum(ref.expected):.3f}")
    return ref


@dataclass(frozen=True)
class Reference:
    """The reference distributions that windows are compared with, and where they came from."""

    source: str
    features: dict[str, FeatureReference]

    def for_window(self, window_ms: int, seasonal: Mapping[str, int] | None = None) -> Reference:
        """Without the seasonal features (feature -> period) that a window of this length cannot be compared on."""
        periods = seasonal or {}
        kept = {name: ref for name, ref in self.features.items()
                if name not in periods or window_ms % periods[name] == 0}
        return Reference(self.source, kept)


class References:
    """The references windows are compared with: the serving champion's, and earlier ones windows still count in.

    A window is counted in the bins of the reference that was current when its first observation
    came, and compared with that same reference when it closes: a champion promoted in the middle of
    a window does not mix two binnings, and windows opened after it are measured against the new
    champion's reference. ``swap`` (from a thread following the model topic) changes the current one.
    """

    def __init__(self, current: Reference) -> None:
        self._lock = threading.Lock()
        self._known = {current.source: current}
        self._current = current.source

    # read for every observation: lock-free (a swap adds the reference before it names it current, and
    # single dict reads and assignments are atomic); swaps, which are rare, take the lock
    @property
    def current(self) -> Reference:
        """The reference new windows are counted with."""
        return self._known[self._current]

    def get(self, source: str) -> Reference | None:
        """The reference named ``source``, if this process knows it."""
        return self._known.get(source)

    def swap(self, reference: Reference) -> bool:
        """Make ``reference`` the current one (the earlier ones stay known); False when it already was."""
        with self._lock:
            if reference.source == self._current:
                return False
            self._known[reference.source] = reference
            self._current = reference.source
            return True

    def for_window(self, window_ms: int, seasonal: Mapping[str, int] | None = None) -> References:
        """A view without the seasonal features a window of ``window_ms`` cannot compare; it follows the swaps."""
        return _WindowView(self, window_ms, seasonal or {})


class _WindowView(References):
    """:meth:`References.for_window`: the parent's references, narrowed to a window length when read."""

    def __init__(self, parent: References, window_ms: int, seasonal: Mapping[str, int]) -> None:
        # no super().__init__: the parent holds the references, this view only their narrowed copies
        self._lock = threading.Lock()
        self._known: dict[str, Reference] = {}
        self._parent, self._window_ms, self._seasonal = parent, window_ms, dict(seasonal)

    def _narrow(self, reference: Reference) -> Reference:
        found = self._known.get(reference.source)
        if found is None:
            with self._lock:
                found = self._known[reference.source] = reference.for_window(self._window_ms, self._seasonal)
        return found

    @property
    def current(self) -> Reference:
        """The parent's current reference, narrowed."""
        return self._narrow(self._parent.current)

    def get(self, source: str) -> Reference | None:
        """The parent's reference named ``source``, narrowed."""
        found = self._parent.get(source)
        return None if found is None else self._narrow(found)

    def swap(self, reference: Reference) -> bool:
        """Swap the parent's current reference."""
        return self._parent.swap(reference)


def as_references(reference: Reference | References) -> References:
    """``reference`` as :class:`References` (a fixed reference never swaps)."""
    return reference if isinstance(reference, References) else References(reference)


def parse_reference(data: Any, source: str, known: Collection[str] | None = None) -> Reference:
    """A :class:`Reference` from the JSON of ``reference.json``; features not in ``known`` are ignored."""
    if not isinstance(data, dict):
        raise BadReference(f"{source}: a reference is a JSON object of feature -> distribution")
    features = {name: feature_reference(name, spec) for name, spec in data.items() if known is None or name in known}
    if not features:
        names = ", ".join(sorted(known or ()))
        raise BadReference(f"{source}: no known feature (known: {names})")
    return Reference(source, features)


def load_reference(path: Path, known: Collection[str] | None = None) -> Reference:
    """Read a ``reference.json`` file; raises :class:`BadReference` with the reason."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BadReference(f"reference file {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as e:
        raise BadReference(f"reference file {path} is not readable JSON: {e}") from None
    return parse_reference(data, str(path), known)


def numeric_reference(values: Iterable[float], bins: int = 10) -> dict[str, Any]:
    """A numeric reference entry (quantile bins) of ``values``, in the trainer's format."""
    x = np.asarray(list(values), dtype=np.float64)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1)
    return {"kind": "numeric", "edges": [float(e) for e in edges], "fractions": (counts / counts.sum()).tolist()}


def psi(expected: Iterable[float], actual: Iterable[float], eps: float = EPSILON) -> float:
    """Population stability index of ``actual`` fractions against ``expected`` ones."""
    e = np.maximum(np.asarray(list(expected), dtype=np.float64), eps)
    a = np.maximum(np.asarray(list(actual), dtype=np.float64), eps)
    return float(np.sum((a - e) * np.log(a / e)))


# --- the window state of the drift check ------------------------------------------------------


@dataclass
class DriftCounts:
    """Events of one window, counted per feature per reference bin."""

    count: int = 0
    bins: dict[str, list[int]] = field(default_factory=dict)
    reference: str = ""  # the source of the reference whose bins these are (set by the first observation)


@dataclass(frozen=True)
class DriftReading:
    """One feature over one window: its PSI (None when too few events to tell)."""

    feature: str
    window_start: int
    window_end: int
    count: int
    psi: float | None
    expected: dict[str, float]
    actual: dict[str, float]
    reference: str = ""  # the source of the reference it was compared with


class DriftAccumulator:
    """Counts observations (input events or labels) into the reference bins of their features.

    A window's counts use the reference that was current at its first observation (see :class:`References`).
    """

    def __init__(self, reference: Reference | References) -> None:
        self.references = as_references(reference)

    def empty(self) -> DriftCounts:
        """No events yet."""
        return DriftCounts()

    def _reference_of(self, acc: DriftCounts) -> Reference:
        if not acc.reference:  # a new window (or one counted before windows named their reference)
            acc.reference = self.references.current.source
        found = self.references.get(acc.reference)
        if found is None:  # counted before a restart, with a reference this process does not know
            found = self.references.current
            log.warning("a drift window counted against %s, no longer known, is counted again against %s",
                        acc.reference, found.source)
            acc.count, acc.bins, acc.reference = 0, {}, found.source
        return found

    def add(self, acc: DriftCounts, item: Observation) -> None:
        """Count one observation in each of its features' bins."""
        reference = self._reference_of(acc)
        acc.count += 1
        for feature, value in item.values.items():
            ref = reference.features.get(feature)
            if ref is None:
                continue
            counts = acc.bins.get(feature)
            if counts is None:
                counts = acc.bins[feature] = [0] * ref.bins
            b = ref.bin_of(value)
            counts[ref.bins - 1 if b is None else b] += 1

    def copy(self, acc: DriftCounts) -> DriftCounts:
        """An independent copy."""
        return DriftCounts(acc.count, {f: list(c) for f, c in acc.bins.items()}, acc.reference)


def readings(
    reference: Reference | References, min_per_bin: int
) -> Callable[[int, int, DriftCounts, int], list[DriftReading]]:
    """The window emitter of the drift check: one reading per feature, against the window's own reference."""
    references = as_references(reference)

    def emit(start: int, end: int, acc: DriftCounts, revision: int) -> list[DriftReading]:
        window_reference = references.get(acc.reference) if acc.reference else references.current
        if window_reference is None:
            return []  # counted against a reference this process no longer knows: nothing to compare with
        out = []
        for feature, counts in acc.bins.items():
            ref = window_reference.features[feature]
            total = sum(counts)
            actual = [c / total for c in counts]
            expected = list(ref.expected) + [0.0] * (len(counts) - len(ref.expected))
            value = psi(expected, actual) if total >= min_per_bin * ref.bins else None
            out.append(
                DriftReading(
                    feature, start, end, total, value,
                    dict(zip(ref.labels, expected, strict=True)), dict(zip(ref.labels, actual, strict=True)),
                    window_reference.source,
                )
            )
        return out

    return emit


def alert_for(reading: DriftReading, threshold: float, source: str | None = None) -> DriftAlert | None:
    """An alert when the reading's PSI is above ``threshold``, naming ``source`` or the reading's reference."""
    if reading.psi is None or reading.psi <= threshold:
        return None
    return DriftAlert(
        feature=reading.feature,
        psi=reading.psi,
        threshold=threshold,
        window_start=reading.window_start,
        window_end=reading.window_end,
        count=reading.count,
        reference=source or reading.reference,
        expected=reading.expected,
        actual=reading.actual,
    )
