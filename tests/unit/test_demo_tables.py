"""The demo's and ``edml scores``' tables show whole versions, even on an 80-column terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edml.evaluation.scores import scores_table
from edml.schemas.records import Prediction, ScoreWindow
from rich.console import Console

from edml.cli.demo import LivePredictions, summary_table
from edml.core.config import Settings

# two versions published minutes apart: the same up to their last characters
V1 = "0.1.0-20261123192014-3f9a2c1-1"
V2 = "0.1.0-20261123192731-3f9a2c1-2"


def _render(table: object, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def _prediction(trip_id: str, version: str) -> Prediction:
    return Prediction(trip_id=trip_id, predicted_duration_s=600.0, model_name="trip-duration", model_version=version,
                      event_time=1_700_000_000_000, scored_at=1_700_000_000_050, latency_ms=12.0)


def _live() -> LivePredictions:
    preds = [_prediction(f"trip-{i:04d}", V1 if i < 3 else V2) for i in range(6)]
    return LivePredictions(settings=Settings(), actual={p.trip_id: 640.0 for p in preds},
                           seen={p.trip_id: p for p in preds}, recent=preds)


def test_prediction_table_shows_each_version_whole() -> None:
    text = _render(_live().table(sent=6))
    assert text.count(V1) >= 3 + 1 and text.count(V2) >= 3 + 1  # the rows and the title's counts


def test_summary_shows_each_version_whole() -> None:
    text = _render(summary_table(_live(), V1, V2))
    assert V1 in text and V2 in text


def test_scores_table_shows_each_version_whole() -> None:
    windows = [ScoreWindow(model_name="trip-duration", model_version=v, role=role, window_start=1_700_000_000_000,
                           window_end=1_700_003_600_000, count=100, mae=120.0 + i, rmse=150.0, bias=3.0,
                           p90_abs_error=200.0)
               for i, (v, role) in enumerate([(V1, "champion"), (V2, "challenger")])]
    text = _render(scores_table(windows, last=4), width=100)
    assert V1 in text and V2 in text


def _windows(versions: list[tuple[str, str]], hours: int = 6) -> list[ScoreWindow]:
    start, hour = 1_700_000_000_000, 3_600_000
    return [ScoreWindow(model_name="trip-duration", model_version=v, role=role, window_start=start + h * hour,
                        window_end=start + (h + 1) * hour, count=100, mae=100.0 + 10 * i + h, rmse=150.0, bias=0.0,
                        p90_abs_error=200.0)
            for h in range(hours) for i, (v, role) in enumerate(versions)]


def test_scores_plot_is_a_png_with_a_line_per_version(tmp_path: Path) -> None:
    from edml.evaluation.scores import plot_scores

    one = plot_scores(_windows([(V1, "champion")]), tmp_path / "one.png")
    two = plot_scores(_windows([(V1, "champion"), (V2, "challenger")]), tmp_path / "plots" / "two.png")
    for path in (one, two):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    assert one.read_bytes() != two.read_bytes()


def test_scores_plot_must_be_named_png(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "edml.cli", "scores", "--plot", str(tmp_path / "scores.jpg"),
                           "-b", "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    wrong = tmp_path / "scores.jpg"
    assert done.stderr.strip() == f"edml: error: --plot {wrong}: the plot is a PNG, name it <file>.png"
