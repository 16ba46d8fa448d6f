"""The promotion rule and the scores topic's read-back (latest revisions, merged roles)."""

from __future__ import annotations

import pytest
from edml.evaluation.config import BadDuration, format_duration_ms, parse_duration_ms
from edml.evaluation.promotion import PromotionError, champion_record, compare
from edml.evaluation.scores import latest_revisions, scores_table
from edml.schemas.records import ModelRecord, ModelSignature, ScoreWindow

H = 3_600_000


def window(version: str, start_h: int, mae: float, count: int = 100, role: str = "challenger",
           revision: int = 0) -> ScoreWindow:
    return ScoreWindow("trip-duration", version, role, start_h * H, (start_h + 1) * H, count, mae, mae * 1.3, 0.0,
                       mae * 2, revision)


def history(champion_maes: list[float], challenger_maes: list[float]) -> list[ScoreWindow]:
    return ([window("v1", h, m, role="champion") for h, m in enumerate(champion_maes)]
            + [window("v2", h, m) for h, m in enumerate(challenger_maes)])


def test_challenger_wins_only_beyond_the_margin_over_k_windows() -> None:
    windows = history([300, 300, 300, 300], [500, 280, 280, 280])
    c = compare(windows, "trip-duration", "v1", "v2", last=3, margin=0.05)
    assert [a.window_start for a, _ in c.windows] == [1 * H, 2 * H, 3 * H]  # the last three
    assert (c.champion.loss, c.challenger.loss) == (300.0, 280.0)
    assert c.challenger_wins  # 280 < 300 x 0.95 = 285
    assert not compare(windows, "trip-duration", "v1", "v2", last=3, margin=0.10).challenger_wins  # needs < 270
    assert not compare(windows, "trip-duration", "v1", "v2", last=4, margin=0.05).challenger_wins  # 330 over 4


def test_too_few_common_windows_is_no_win() -> None:
    windows = history([300, 300, 300], [100])
    c = compare(windows, "trip-duration", "v1", "v2", last=3, margin=0.05)
    assert len(c.windows) == 1 and not c.enough_windows and not c.challenger_wins
    assert "only 1 of the 3 windows" in c.verdict()
    empty = compare(history([300], []), "trip-duration", "v1", "v2", last=3, margin=0.05)
    assert "nothing to compare" in empty.verdict()


def test_mae_is_weighted_by_trips() -> None:
    windows = [window("v1", 0, 100, 300, "champion"), window("v1", 1, 400, 100, "champion"),
               window("v2", 0, 150, 300), window("v2", 1, 150, 100)]
    c = compare(windows, "trip-duration", "v1", "v2", last=2, margin=0.0)
    assert c.champion.loss == pytest.approx((100 * 300 + 400 * 100) / 400)
    assert c.challenger.loss == 150.0 and c.challenger.count == 400


def test_bad_options_are_operator_errors() -> None:
    with pytest.raises(PromotionError):
        compare([], "m", "v1", "v2", last=0, margin=0.05)
    with pytest.raises(PromotionError):
        compare([], "m", "v1", "v2", last=3, margin=1.5)


def test_latest_revision_wins_and_roles_of_a_version_merge() -> None:
    rows = [window("v2", 0, 300, 10, revision=0), window("v2", 0, 200, 20, revision=1),
            window("v2", 0, 300, 10, revision=0)]  # a re-emitted older revision does not win
    [latest] = latest_revisions(rows)
    assert (latest.mae, latest.count, latest.revision) == (200, 20, 1)
    # v2 promoted mid-window: a challenger row and a champion row in the same window count as one
    merged = [window("v2", 0, 100, 100), window("v2", 0, 200, 100, role="champion"),
              window("v1", 0, 400, 200, role="champion")]
    c = compare(merged, "trip-duration", "v1", "v2", last=1, margin=0.05)
    assert c.challenger.count == 200 and c.challenger.loss == 150.0


def test_the_new_champion_keeps_the_old_one_in_shadow() -> None:
    sig = ModelSignature([], [])
    old = ModelRecord("trip-duration", "v1", "file:///v1", "a" * 64, 1, sig, 0, challengers=["v2", "v3"])
    v2 = ModelRecord("trip-duration", "v2", "file:///v2", "b" * 64, 1, sig, 0, signature_ed25519=b"x" * 64)
    new = champion_record(v2, old, keep_old=True, now_ms=123)
    assert (new.version, new.artifact_uri, new.challengers, new.published_at) == ("v2", "file:///v2", ["v3", "v1"], 123)
    assert new.signature_ed25519 is None  # the content changed: the old signature no longer holds
    assert champion_record(v2, old, keep_old=False, now_ms=1).challengers == ["v3"]


def test_scores_table_marks_the_best_version_per_window() -> None:
    from rich.console import Console

    console = Console(width=140, record=True)
    console.print(scores_table(history([300, 250], [280, 260]), last=1))
    text = console.export_text()
    assert "250.0*" in text and "260.0*" not in text and "300.0" not in text  # only the last window


def test_durations() -> None:
    assert [parse_duration_ms(t) for t in ("90s", "15m", "24h", "1h30m", "2d", "500ms", "30")] == [
        90_000, 900_000, 86_400_000, 5_400_000, 172_800_000, 500, 30_000]
    assert format_duration_ms(5_400_000) == "1h30m"
    for bad in ("", "15x", "h", "1h 30m", "-5m"):
        with pytest.raises(BadDuration):
            parse_duration_ms(bad)
