"""Tumbling event-time windows that may be revised, and the error statistics of a window.

Bytewax's own windowing drops an item that arrives after its window closed. Here a window is
emitted once the watermark passes its end (``lateness`` after the newest event time, moving on
with the system clock while nothing arrives, like Bytewax's ``EventClock``), and an item that
arrives later still lands in its window, which is then emitted again with ``revision + 1`` so
a reader keeps the latest revision. Revisions of one window are at least ``revise_every_ms``
of system time apart, so catching up on a backlog (where partitions are read at different
speeds and many items are late) emits a few revisions, not one per late item. Only items
older than the retention (window end + ``retention``) are dropped, and counted. At the end of
a bounded input every window with unemitted items is emitted.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

import numpy as np
from bytewax.operators import StatefulBatchLogic
from edml.schemas.records import Evaluation, ScoreWindow

from edml.pipelines.figures import BINARY, REGRESSION, binary_figures

V = TypeVar("V")
V_in = TypeVar("V_in", contravariant=True)  # an accumulator only takes items in
A = TypeVar("A")
W = TypeVar("W")


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return int(time.time() * 1000)


def window_start(ts_ms: int, length_ms: int) -> int:
    """Start of the tumbling window (aligned to the epoch) that holds ``ts_ms``."""
    return ts_ms - ts_ms % length_ms


class Accumulator(Protocol[V_in, A]):
    """How a window folds its items: an empty state, adding one item, and a snapshot copy."""

    def empty(self) -> A:
        """A new, empty window state."""
        ...

    def add(self, acc: A, item: V_in) -> None:
        """Fold ``item`` into ``acc`` in place."""
        ...

    def copy(self, acc: A) -> A:
        """An independent copy of ``acc`` for a recovery snapshot."""
        ...


@dataclass(frozen=True)
class WindowSpec:
    """Length of the tumbling windows, how long to wait for stragglers and how long to keep them."""

    length_ms: int
    lateness_ms: int
    retention_ms: int
    revise_every_ms: int = 10_000


@dataclass
class _Window(Generic[A]):
    acc: A
    revision: int = 0  # the revision the next emission gets
    dirty: bool = True  # holds items not yet emitted
    emitted_at: int | None = None  # system time of the last emission


@dataclass(frozen=True)
class WindowsSnapshot(Generic[A]):
    """The recoverable state of one key's windows."""

    watermark_base: int | None
    windows: dict[int, tuple[A, int, bool]] = field(default_factory=dict)


Emit = Callable[[int, int, A, int], Iterable[W]]  # (start, end, acc, revision) -> outputs


class TumblingWindows(StatefulBatchLogic[V, W, WindowsSnapshot]):
    """Revisable tumbling windows over one key (Bytewax ``StatefulBatchLogic``)."""

    def __init__(
        self,
        spec: WindowSpec,
        time_of: Callable[[V], int],
        accumulator: Accumulator[V, A],
        emit: Emit,
        resume: WindowsSnapshot | None = None,
        on_dropped: Callable[[V], None] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.spec, self.time_of, self.accumulator, self.emit = spec, time_of, accumulator, emit
        self.on_dropped = on_dropped
        self.clock = clock
        # watermark = base + system time elapsed since the base was set (base = newest - lateness)
        self.watermark_base: int | None = resume.watermark_base if resume else None
        self.base_set_at = clock()
        self.windows: dict[int, _Window] = {}
        if resume:
            for start, (acc, revision, dirty) in resume.windows.items():
                self.windows[start] = _Window(accumulator.copy(acc), revision, dirty)

    def watermark(self) -> int | None:
        """Event time before which every window counts as complete."""
        if self.watermark_base is None:
            return None
        return self.watermark_base + max(0, self.clock() - self.base_set_at)

    def on_batch(self, values: list[V]) -> tuple[Iterable[W], bool]:
        """Fold ``values`` into their windows; emit the windows the watermark has passed."""
        for value in values:
            self._add(value)
        return self._emit_due(self.watermark()), StatefulBatchLogic.RETAIN

    def _add(self, value: V) -> None:
        ts = self.time_of(value)
        candidate = ts - self.spec.lateness_ms
        current = self.watermark()
        if current is None or candidate > current:
            self.watermark_base, self.base_set_at = candidate, self.clock()
            current = candidate
        start = window_start(ts, self.spec.length_ms)
        if start + self.spec.length_ms + self.spec.retention_ms <= current:
            if self.on_dropped is not None:
                self.on_dropped(value)
            return
        window = self.windows.get(start)
        if window is None:
            window = self.windows[start] = _Window(self.accumulator.empty())
        self.accumulator.add(window.acc, value)
        window.dirty = True

    def on_notify(self) -> tuple[Iterable[W], bool]:
        """The watermark moved on with the system clock, or a revision is due: emit."""
        return self._emit_due(self.watermark()), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[W], bool]:
        """A bounded input ended: emit every window with unemitted items, complete or not."""
        return self._emit_due(None, everything=True), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        """When the next window is due: the watermark passes its end, or its next revision may go out."""
        if self.watermark_base is None:
            return None
        due: list[int] = []
        for start, w in self.windows.items():
            if not w.dirty:
                continue
            closes_at = self.base_set_at + (start + self.spec.length_ms - self.watermark_base)
            revisable_at = w.emitted_at + self.spec.revise_every_ms if w.emitted_at is not None else closes_at
            due.append(max(closes_at, revisable_at))
        if not due:
            return None
        return datetime.fromtimestamp(max(min(due), 0) / 1000, UTC)

    def _emit_due(self, watermark: int | None, everything: bool = False) -> list[W]:
        out: list[W] = []
        now = self.clock()
        for start in sorted(self.windows):
            window = self.windows[start]
            end = start + self.spec.length_ms
            complete = watermark is not None and end <= watermark
            may_revise = window.emitted_at is None or now - window.emitted_at >= self.spec.revise_every_ms
            if window.dirty and (everything or (complete and may_revise)):
                out.extend(self.emit(start, end, window.acc, window.revision))
                window.revision += 1
                window.dirty = False
                window.emitted_at = now
            if watermark is not None and end + self.spec.retention_ms <= watermark and not window.dirty:
                del self.windows[start]
        return out

    def snapshot(self) -> WindowsSnapshot:
        """A deep copy of the open and retained windows."""
        return WindowsSnapshot(
            self.watermark_base,
            {s: (self.accumulator.copy(w.acc), w.revision, w.dirty) for s, w in self.windows.items()},
        )


# --- the figures of one model version over one window ---------------------------------------


@dataclass
class ErrorStats:
    """Sums that give count, MAE, RMSE and bias, the absolute errors for the p90, and for a binary
    task the scores and labels (the AUC needs them all)."""

    model_name: str = ""
    model_version: str = ""
    role: str = ""
    count: int = 0
    sum_abs: float = 0.0
    sum_sq: float = 0.0
    sum_err: float = 0.0
    abs_errors: array = field(default_factory=lambda: array("d"))
    task: str = REGRESSION
    threshold: float = 0.5
    scores: array = field(default_factory=lambda: array("d"))
    labels: array = field(default_factory=lambda: array("d"))

    def add(self, error: float, predicted: float = math.nan, actual: float = math.nan) -> None:
        """Count one error (predicted minus actual); a binary task keeps the score and the label too."""
        a = abs(error)
        self.count += 1
        self.sum_abs += a
        self.sum_sq += error * error
        self.sum_err += error
        self.abs_errors.append(a)
        if self.task == BINARY:
            self.scores.append(predicted)
            self.labels.append(actual)

    def p90(self) -> float:
        """90th percentile of the absolute errors (linear interpolation between ranks)."""
        if not self.abs_errors:
            return math.nan
        ordered = sorted(self.abs_errors)
        pos = 0.9 * (len(ordered) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    def to_score_window(self, start: int, end: int, revision: int) -> ScoreWindow:
        """The aggregate record for the scores topic."""
        n = self.count
        window = ScoreWindow(
            model_name=self.model_name,
            model_version=self.model_version,
            role=self.role,
            window_start=start,
            window_end=end,
            count=n,
            mae=self.sum_abs / n,
            rmse=math.sqrt(self.sum_sq / n),
            bias=self.sum_err / n,
            p90_abs_error=self.p90(),
            revision=revision,
        )
        if self.task == BINARY:
            figures = binary_figures(np.frombuffer(self.scores, dtype=np.float64),
                                     np.frombuffer(self.labels, dtype=np.float64), self.threshold)
            window.log_loss, window.roc_auc = figures["log_loss"], figures["roc_auc"]
            window.accuracy, window.precision, window.recall = (figures["accuracy"], figures["precision"],
                                                                figures["recall"])
            window.threshold = self.threshold
        return window


class ErrorAccumulator:
    """Folds evaluations of one (model, version, role) into :class:`ErrorStats` for the pipeline's task."""

    def __init__(self, task: str = REGRESSION, threshold: float = 0.5) -> None:
        self.task, self.threshold = task, threshold

    def empty(self) -> ErrorStats:
        """No errors yet."""
        return ErrorStats(task=self.task, threshold=self.threshold)

    def add(self, acc: ErrorStats, item: Evaluation) -> None:
        """Count the evaluation's error; the first one names the model version."""
        if acc.count == 0:
            acc.model_name, acc.model_version, acc.role = item.model_name, item.model_version, item.role
        nan = math.nan
        acc.add(item.error if item.error is not None else nan,
                item.predicted if item.predicted is not None else nan,
                item.actual if item.actual is not None else nan)

    def copy(self, acc: ErrorStats) -> ErrorStats:
        """A copy with its own arrays."""
        return ErrorStats(acc.model_name, acc.model_version, acc.role, acc.count, acc.sum_abs, acc.sum_sq,
                          acc.sum_err, array("d", acc.abs_errors), acc.task, acc.threshold,
                          array("d", acc.scores), array("d", acc.labels))


def emit_score_window(start: int, end: int, acc: ErrorStats, revision: int) -> list[ScoreWindow]:
    """The window's aggregate (nothing for an empty window)."""
    return [acc.to_score_window(start, end, revision)] if acc.count else []


def score_key(evaluation: Evaluation) -> str:
    """Windows are kept per model name, version and role."""
    return f"{evaluation.model_name}/{evaluation.model_version}/{evaluation.role}"
