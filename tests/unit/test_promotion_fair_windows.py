"""``edml promote``'s comparison (also the autopilot's) counts only windows where both versions have alike counts."""

from __future__ import annotations

from edml.evaluation.promotion import compare
from edml.schemas.records import ScoreWindow

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
    comparison = compare(windows, "trip-duration", "v1", "v2", last=3, margin=0.05)
    assert [c.window_start for c, _ in comparison.windows] == [H, 2 * H]
    assert not comparison.enough_windows  # the two thin windows do not count towards K
    assert comparison.challenger.loss == 400.0 and comparison.challenger.count == 178 + 75


def test_counts_are_merged_over_partitions_before_they_are_compared() -> None:
    windows = [
        _window("v1", 0, 100, 900.0), _window("v1", 0, 100, 900.0),  # two partitions: 200 in all
        _window("v2", 0, 60, 400.0, "challenger"), _window("v2", 0, 30, 400.0, "challenger"),  # 90 < 100
        _window("v1", H, 100, 900.0), _window("v2", H, 60, 400.0, "challenger"),
        _window("v2", H, 40, 400.0, "challenger"),  # 100 of 100
    ]
    comparison = compare(windows, "trip-duration", "v1", "v2", last=2, margin=0.05)
    assert [c.window_start for c, _ in comparison.windows] == [H]
