"""The shadow comparison keeps only the windows where champion and challenger have alike counts of evaluations."""

from __future__ import annotations

from edml.evaluation.promotion import compare
from edml.schemas.records import ScoreWindow

from edml.autopilot.shadow import covered_windows

H = 3_600_000


def _window(version: str, start: int, count: int, mae: float, role: str = "champion") -> ScoreWindow:
    return ScoreWindow("trip-duration", version, role, start, start + H, count, mae, mae, 0.0, mae)


def test_windows_where_one_version_has_far_fewer_evaluations_are_not_compared() -> None:
    windows = [
        _window("v1", 0, 200, 900.0), _window("v2", 0, 12, 100.0, "challenger"),  # loaded near the end
        _window("v1", H, 180, 900.0), _window("v2", H, 178, 400.0, "challenger"),
        _window("v1", 2 * H, 150, 900.0), _window("v2", 2 * H, 75, 400.0, "challenger"),  # exactly half
        _window("v1", 3 * H, 20, 900.0), _window("v2", 3 * H, 90, 100.0, "challenger"),  # the champion's are late
    ]
    kept = covered_windows(windows, "v1", "v2")
    assert [(w.model_version, w.window_start) for w in kept] == [
        ("v1", 0), ("v1", H), ("v2", H), ("v1", 2 * H), ("v2", 2 * H), ("v1", 3 * H)]
    comparison = compare(kept, "trip-duration", "v1", "v2", last=3, margin=0.05)
    assert len(comparison.windows) == 2 and not comparison.enough_windows  # the late window does not count
    assert comparison.challenger.loss == 400.0


def test_counts_are_merged_over_partitions_and_other_models_are_kept() -> None:
    windows = [
        _window("v1", 0, 100, 900.0), _window("v1", 0, 100, 900.0),  # two partitions: 200 in all
        _window("v2", 0, 60, 400.0, "challenger"), _window("v2", 0, 30, 400.0, "challenger"),  # 90 < 100
        _window("v3", 0, 5, 1.0, "challenger"),  # another challenger: not this comparison's business
    ]
    kept = covered_windows(windows, "v1", "v2")
    assert [w.model_version for w in kept] == ["v1", "v1", "v3"]
    assert covered_windows(windows, "v1", "v2", share=0.4) == windows
