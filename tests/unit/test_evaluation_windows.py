"""Revisable tumbling windows and the error statistics of a window."""

from __future__ import annotations

import math
import pickle

import numpy as np
from edml.evaluation.windows import (
    ErrorAccumulator,
    ErrorStats,
    TumblingWindows,
    WindowSpec,
    emit_score_window,
    score_key,
    window_start,
)
from edml.schemas.records import Evaluation, ScoreWindow

M = 60_000
T0 = 1_704_067_200_000


class FakeClock:
    """System time that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def ev(observed: int, error: float, version: str = "v1", role: str = "champion") -> Evaluation:
    return Evaluation("t", "evaluated", "trip-duration", version, role, observed - 600_000, observed, 600.0,
                      600.0 + error, error)


def windows(clock: FakeClock, lateness: int = 5 * M, resume=None) -> TumblingWindows:
    spec = WindowSpec(length_ms=15 * M, lateness_ms=lateness, retention_ms=60 * M)
    return TumblingWindows(spec, lambda e: e.observed_time, ErrorAccumulator(), emit_score_window, resume,
                           clock=clock)


def feed(w: TumblingWindows, *items: Evaluation) -> list[ScoreWindow]:
    out: list[ScoreWindow] = []
    for item in items:
        out.extend(w.on_batch([item])[0])
    return out


def test_error_stats_match_numpy() -> None:
    errors = [-120.0, 30.0, 45.5, 300.0, -10.0, 0.0, 75.0]
    stats = ErrorStats("m", "v", "champion")
    for e in errors:
        stats.add(e)
    s = stats.to_score_window(0, 10, 0)
    a = np.abs(errors)
    assert s.count == 7
    assert math.isclose(s.mae, a.mean())
    assert math.isclose(s.rmse, math.sqrt(np.mean(np.square(errors))))
    assert math.isclose(s.bias, np.mean(errors))
    assert math.isclose(s.p90_abs_error, float(np.quantile(a, 0.9)))


def test_window_is_emitted_when_the_watermark_passes_its_end() -> None:
    clock = FakeClock()
    w = windows(clock)
    start = window_start(T0, 15 * M)
    assert feed(w, ev(start + M, 10.0), ev(start + 14 * M, -30.0)) == []
    assert feed(w, ev(start + 19 * M, 5.0)) == []  # watermark = 14 min past the start... lateness holds it
    [s] = feed(w, ev(start + 20 * M, 5.0))  # watermark reaches the end
    assert (s.window_start, s.window_end, s.count, s.mae, s.bias, s.revision) == (start, start + 15 * M, 2, 20.0,
                                                                                 -10.0, 0)


def test_late_items_revise_the_window_instead_of_being_lost() -> None:
    clock = FakeClock()
    w = windows(clock)
    start = window_start(T0, 15 * M)
    feed(w, ev(start + M, 10.0))
    [first] = feed(w, ev(start + 40 * M, 1.0))
    assert feed(w, ev(start + 2 * M, 30.0)) == []  # 38 min late, within the retention: held for a revision
    clock.now += 10_000
    [revised] = w.on_notify()[0]
    assert (first.count, first.revision) == (1, 0)
    assert (revised.window_start, revised.count, revised.mae, revised.revision) == (start, 2, 20.0, 1)


def test_a_burst_of_late_items_gives_one_revision_not_one_each() -> None:
    clock = FakeClock()
    w = windows(clock)
    start = window_start(T0, 15 * M)
    feed(w, ev(start + M, 10.0), ev(start + 40 * M, 1.0))
    late = [ev(start + 2 * M, 30.0) for _ in range(500)]
    assert list(w.on_batch(late)[0]) == [] and feed(w, *late) == []
    due = w.notify_at()
    assert due is not None and int(due.timestamp() * 1000) == clock.now + 10_000
    clock.now += 10_000
    [revised] = w.on_notify()[0]
    assert (revised.count, revised.revision) == (1001, 1)


def test_items_older_than_the_retention_are_dropped_and_reported() -> None:
    clock = FakeClock()
    dropped = []
    spec = WindowSpec(15 * M, 0, 30 * M)
    w = TumblingWindows(spec, lambda e: e.observed_time, ErrorAccumulator(), emit_score_window,
                        on_dropped=dropped.append, clock=clock)
    start = window_start(T0, 15 * M)
    feed(w, ev(start + 2 * 60 * M, 1.0))
    assert feed(w, ev(start, 1.0)) == []
    assert len(dropped) == 1


def test_the_watermark_moves_on_with_the_system_clock() -> None:
    clock = FakeClock()
    w = windows(clock)
    start = window_start(T0, 15 * M)
    feed(w, ev(start + 14 * M, 10.0))
    assert list(w.on_notify()[0]) == []
    due = w.notify_at()
    assert due is not None
    clock.now += 6 * M  # nothing arrives for six minutes: the window is complete
    assert int(due.timestamp() * 1000) <= clock.now
    [s] = w.on_notify()[0]
    assert s.count == 1
    assert w.notify_at() is None


def test_end_of_input_emits_open_windows() -> None:
    clock = FakeClock()
    w = windows(clock)
    feed(w, ev(T0, 10.0))
    [s] = w.on_eof()[0]
    assert s.count == 1 and s.revision == 0


def test_snapshot_round_trips_and_is_independent() -> None:
    clock = FakeClock()
    w = windows(clock)
    start = window_start(T0, 15 * M)
    feed(w, ev(start + M, 10.0))
    snap = pickle.loads(pickle.dumps(w.snapshot()))
    feed(w, ev(start + 2 * M, 1000.0))
    restored = windows(clock, resume=snap)
    [s] = feed(restored, ev(start + 3 * M, 30.0), ev(start + 30 * M, 0.0))
    assert (s.count, s.mae) == (2, 20.0)


def test_versions_and_roles_are_windowed_apart() -> None:
    assert score_key(ev(T0, 1.0, "v1", "champion")) != score_key(ev(T0, 1.0, "v2", "challenger"))
