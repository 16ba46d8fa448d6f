"""The scores topic read back: the latest revision of every window, and the live comparison table."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edml.schemas.records import ScoreWindow
from edml.schemas.serde import DecodeError
from edml.schemas.wire import topic_serdes

from edml.core.config import Settings
from edml.kafka.reading import read_decoded
from edml.pipelines.figures import BINARY, LOSS, LOSS_LABEL, REGRESSION


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
    windows = read_decoded(settings, settings.topics.scores, topic_serdes(settings).scores.decode, DecodeError,
                           "a ScoreWindow")
    return latest_revisions([w for w in windows if model_name is None or w.model_name == model_name])


def task_of(windows: list[ScoreWindow]) -> str:
    """The task the windows were scored for: binary when they carry binary figures, else regression."""
    return BINARY if any(w.log_loss is not None for w in windows) else REGRESSION


def loss_metric(windows: list[ScoreWindow]) -> str:
    """The ScoreWindow field that compares versions of these windows (lower is better): MAE, or log loss."""
    return LOSS[task_of(windows)]


def loss_label(metric: str) -> str:
    """How tables name a loss metric."""
    return LOSS_LABEL.get(metric, metric)


@dataclass(frozen=True)
class VersionWindow:
    """One version's figures over one window, its roles merged (a version promoted mid-window has two rows)."""

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
    log_loss: float | None = None

    def loss(self, metric: str) -> float:
        """The value of loss ``metric`` (``mae`` or ``log_loss``; NaN when the window has none)."""
        value = getattr(self, metric)
        return float("nan") if value is None else float(value)


def _weighted_optional(rows: list[ScoreWindow], name: str) -> float | None:
    known = [(getattr(r, name), r.count) for r in rows if getattr(r, name) is not None]
    n = sum(c for _, c in known)
    return sum(v * c for v, c in known) / n if n else None


def by_version(windows: list[ScoreWindow]) -> dict[tuple[str, int], VersionWindow]:
    """(version, window start) -> the version's figures in that window, counts weighting the merge."""
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
            log_loss=_weighted_optional(rows, "log_loss"),
        )
    return out


def format_time(ms: int) -> str:
    """An event time (New York wall clock, ``local-timestamp-millis``) as ``YYYY-MM-DD HH:MM``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def scores_table(windows: list[ScoreWindow], last: int):  # noqa: ANN201 - rich.table.Table, imported lazily
    """A rich table of the last ``last`` windows: one row per version per window, side by side.

    Binary tasks show log loss, ROC AUC, accuracy, precision and recall beside MAE; the star marks the
    lowest loss of the window (MAE, or log loss).
    """
    from rich.table import Table

    starts = sorted({w.window_start for w in windows})[-last:]
    shown = [w for w in windows if w.window_start in set(starts)]
    metric = loss_metric(shown)
    binary = metric == LOSS[BINARY]

    def loss(w: ScoreWindow) -> float:
        value = getattr(w, metric)
        return float("inf") if value is None else float(value)

    best: dict[int, float] = {}
    for w in shown:
        best[w.window_start] = min(best.get(w.window_start, loss(w)), loss(w))
    table = Table(title=f"Live figures per model version (* = lowest {loss_label(metric)} of the window)")
    columns = [("window (New York)", "left"), ("model", "left"), ("version", "left"), ("role", "left"),
               ("count", "right"), ("MAE", "right"), ("RMSE", "right"), ("bias", "right"), ("p90 |err|", "right")]
    if binary:
        columns += [("log loss", "right"), ("AUC", "right"), ("accuracy", "right"), ("precision", "right"),
                    ("recall", "right")]
    columns.append(("rev", "right"))
    longest = max((len(w.model_version) for w in shown), default=7)
    for name, justify in columns:
        # versions whole: two versions of one day differ only in their last characters
        wide = {"min_width": longest, "no_wrap": True} if name == "version" else {}
        table.add_column(name, justify=justify, **wide)  # type: ignore[arg-type]
    digits = 3 if binary else 1
    for i, w in enumerate(shown):
        last_of_window = i + 1 == len(shown) or shown[i + 1].window_start != w.window_start
        several = sum(x.window_start == w.window_start for x in shown) > 1
        star = "*" if loss(w) == best[w.window_start] and several else ""
        cells = [format_time(w.window_start), w.model_name, w.model_version, w.role, str(w.count),
                 f"{w.mae:.{digits}f}" + ("" if binary else star), f"{w.rmse:.{digits}f}",
                 f"{w.bias:+.{digits}f}", f"{w.p90_abs_error:.{digits}f}"]
        if binary:
            cells.append(_figure(w.log_loss) + star)
            cells += [_figure(w.roc_auc), _figure(w.accuracy), _figure(w.precision), _figure(w.recall)]
        cells.append(str(w.revision))
        table.add_row(*cells, end_section=last_of_window)
    return table


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def plot_scores(windows: list[ScoreWindow], path: Path, title: str = "") -> Path:
    """A PNG of each version's live loss (MAE, or log loss) window by window over event time (matplotlib, Agg).

    One line per (version, role), a point per window at its start (New York wall clock); the
    lines of a swap or a shadow challenger sit side by side, as in the table.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    lines: dict[tuple[str, str], list[ScoreWindow]] = defaultdict(list)
    metric = loss_metric(windows)
    for w in latest_revisions(windows):
        lines[(w.model_version, w.role)].append(w)
    fig, ax = plt.subplots(figsize=(10, 4.8))
    for (version, role), series in sorted(lines.items()):
        series.sort(key=lambda w: w.window_start)
        # the wall clock is stored as if UTC: formatting it as UTC shows the city's time
        when = mdates.date2num([datetime.fromtimestamp(w.window_start / 1000, UTC).replace(tzinfo=None)
                                for w in series])
        ax.plot(when, [getattr(w, metric) for w in series], marker="o", linestyle="--" if role != "champion" else "-",
                label=f"{version} ({role})")
    ax.set_xlabel("window start (New York)")
    ax.set_ylabel(loss_label(metric))
    ax.set_title(title or "Live figures per model version")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d %H:%M"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
