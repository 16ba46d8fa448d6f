"""The scores topic read back: the latest revision of every window, and the live comparison table."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edml.schemas.records import ScoreWindow
from edml.schemas.serde import DecodeError
from edml.schemas.wire import topic_serdes

from edml.core.config import Settings
from edml.kafka.reading import read_to_end

log = logging.getLogger(__name__)


def latest_revisions(windows: list[ScoreWindow]) -> list[ScoreWindow]:
    """One row per (model, version, role, window): the highest revision (a re-emission wins a tie)."""
    latest: dict[tuple[str, str, str, int], ScoreWindow] = {}
    for w in windows:
        key = (w.model_name, w.model_version, w.role, w.window_start)
        if key not in latest or w.revision >= latest[key].revision:
            latest[key] = w
    return sorted(latest.values(), key=lambda w: (w.window_start, w.model_name, w.role != "champion", w.model_version))


def read_score_windows(settings: Settings, model_name: str | None = None) -> list[ScoreWindow]:
    """Every window on the scores topic (latest revisions), optionally of one model name."""
    serde = topic_serdes(settings).scores
    out = []
    for msg in read_to_end(settings, settings.topics.scores):
        try:
            window = serde.decode(msg.value)
        except DecodeError as e:
            log.warning("scores topic %d/%d is not a ScoreWindow: %s; skipped", msg.partition, msg.offset, e)
            continue
        if model_name is None or window.model_name == model_name:
            out.append(window)
    return latest_revisions(out)


@dataclass(frozen=True)
class VersionWindow:
    """One version's error over one window, its roles merged (a version promoted mid-window has two rows)."""

    model_name: str
    model_version: str
    roles: tuple[str, ...]
    window_start: int
    window_end: int
    count: int
    mae: float
    rmse: float
    bias: float
    p90_abs_error: float


def by_version(windows: list[ScoreWindow]) -> dict[tuple[str, int], VersionWindow]:
    """(version, window start) -> the version's error in that window, counts weighting the merge."""
    groups: dict[tuple[str, int], list[ScoreWindow]] = defaultdict(list)
    for w in windows:
        groups[(w.model_version, w.window_start)].append(w)
    out = {}
    for key, rows in groups.items():
        n = sum(r.count for r in rows)
        out[key] = VersionWindow(
            rows[0].model_name, rows[0].model_version, tuple(sorted({r.role for r in rows})), rows[0].window_start,
            rows[0].window_end, n,
            mae=sum(r.mae * r.count for r in rows) / n,
            rmse=(sum(r.rmse**2 * r.count for r in rows) / n) ** 0.5,
            bias=sum(r.bias * r.count for r in rows) / n,
            # a merged p90 is not exact; take the larger group's
            p90_abs_error=max(rows, key=lambda r: r.count).p90_abs_error,
        )
    return out


def format_time(ms: int) -> str:
    """An event time (New York wall clock, ``local-timestamp-millis``) as ``YYYY-MM-DD HH:MM``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def scores_table(windows: list[ScoreWindow], last: int):  # noqa: ANN201 - rich.table.Table, imported lazily
    """A rich table of the last ``last`` windows: one row per version per window, side by side."""
    from rich.table import Table

    starts = sorted({w.window_start for w in windows})[-last:]
    shown = [w for w in windows if w.window_start in set(starts)]
    best: dict[int, float] = {}
    for w in shown:
        best[w.window_start] = min(best.get(w.window_start, w.mae), w.mae)
    table = Table(title="Live error per model version (seconds; * = lowest MAE of the window)")
    for name, justify in [("window (New York)", "left"), ("model", "left"), ("version", "left"), ("role", "left"),
                          ("trips", "right"), ("MAE", "right"), ("RMSE", "right"), ("bias", "right"),
                          ("p90 |err|", "right"), ("rev", "right")]:
        # versions whole: two versions of one day differ only in their last characters
        longest = max((len(w.model_version) for w in shown), default=7)
        wide = {"min_width": longest, "no_wrap": True} if name == "version" else {}
        table.add_column(name, justify=justify, **wide)  # type: ignore[arg-type]
    for i, w in enumerate(shown):
        last_of_window = i + 1 == len(shown) or shown[i + 1].window_start != w.window_start
        star = "*" if w.mae == best[w.window_start] and sum(x.window_start == w.window_start for x in shown) > 1 else ""
        table.add_row(
            format_time(w.window_start), w.model_name, w.model_version, w.role, str(w.count), f"{w.mae:.1f}{star}",
            f"{w.rmse:.1f}", f"{w.bias:+.1f}", f"{w.p90_abs_error:.1f}", str(w.revision), end_section=last_of_window,
        )
    return table


def plot_scores(windows: list[ScoreWindow], path: Path, title: str = "") -> Path:
    """A PNG of each version's live MAE window by window over event time (matplotlib, Agg).

    One line per (version, role), a point per window at its start (New York wall clock); the
    lines of a swap or a shadow challenger sit side by side, as in the table.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    lines: dict[tuple[str, str], list[ScoreWindow]] = defaultdict(list)
    for w in latest_revisions(windows):
        lines[(w.model_version, w.role)].append(w)
    fig, ax = plt.subplots(figsize=(10, 4.8))
    for (version, role), series in sorted(lines.items()):
        series.sort(key=lambda w: w.window_start)
        # the wall clock is stored as if UTC: formatting it as UTC shows the city's time
        when = mdates.date2num([datetime.fromtimestamp(w.window_start / 1000, UTC).replace(tzinfo=None)
                                for w in series])
        ax.plot(when, [w.mae for w in series], marker="o", linestyle="--" if role != "champion" else "-",
                label=f"{version} ({role})")
    ax.set_xlabel("window start (New York)")
    ax.set_ylabel("MAE (s)")
    ax.set_title(title or "Live error per model version")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d %H:%M"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
