"""What a replay shows: error per model version against the archived drop-offs, and how versions differ.

* Per version: predictions, how many have an actual duration (a drop-off in the archive), MAE,
  RMSE and MAE by hour of day (the pick-up's hour on the city's wall clock).
* Per challenger: how many of its predictions differ from the champion's for the same trip by
  more than ``diff_threshold`` (relative), and the largest relative difference.
* ``report.md`` or ``report.html`` with PNG plots (matplotlib, Agg): predicted vs actual, error
  histogram per version, MAE by hour of day; and ``summary.json`` for machines.
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from edml.replay.archive import DROPOFFS, ArchiveReader
from edml.replay.run import ReplayResult
from edml.schemas.records import Prediction, TripDropoff
from edml.schemas.serde import DecodeError, dropoff_serde
from edml.schemas.wire import RecordSerde

HOUR_MS = 3_600_000
DEFAULT_DIFF_THRESHOLD = 0.10
SUMMARY_FILE = "summary.json"
PLOTS = {
    "predicted_vs_actual": "predicted_vs_actual.png",
    "error_histogram": "error_histogram.png",
    "mae_by_hour": "mae_by_hour.png",
}


@dataclass(frozen=True)
class VersionStats:
    """How one model version did on the archive (``mae``/``rmse`` None without actual durations)."""

    version: str
    role: str
    predictions: int
    with_actual: int
    mae: float | None
    rmse: float | None
    mae_by_hour: tuple[float | None, ...]  # 24 entries, None where no trip of that hour has an actual


@dataclass(frozen=True)
class VersionDiff:
    """How far ``version``'s predictions are from ``baseline``'s on the same trips."""

    version: str
    baseline: str
    compared: int
    differing: int  # relative difference above ``threshold``
    threshold: float
    max_relative: float


@dataclass(frozen=True)
class ReplayReport:
    """Everything the report says, also written as ``summary.json``."""

    archive: str
    events: int
    predictions: int
    dead_letters: int
    dead_letter_kinds: dict[str, int]
    dropoffs: int
    seconds: float
    events_per_s: float
    versions: tuple[VersionStats, ...]
    diffs: tuple[VersionDiff, ...]

    def stats(self, version: str, role: str | None = None) -> VersionStats | None:
        """The stats of ``version`` (in ``role`` when given)."""
        return next((v for v in self.versions if v.version == version and (role is None or v.role == role)), None)

    def to_json(self) -> str:
        """The report as canonical JSON (NaN-free: missing values are null)."""
        return json.dumps(asdict(self), indent=1, sort_keys=True, allow_nan=False) + "\n"


def actual_durations(archive: ArchiveReader, serde: RecordSerde[TripDropoff] | None = None) -> dict[str, float]:
    """Trip id -> actual duration (s) from the archive's drop-offs (undecodable ones skipped)."""
    serde = serde or dropoff_serde()
    out: dict[str, float] = {}
    if DROPOFFS not in archive.roles():
        return out
    for msg in archive.messages(DROPOFFS):
        try:
            dropoff = serde.decode(msg.value)
        except DecodeError:
            continue
        if math.isfinite(dropoff.duration_s):
            out[dropoff.trip_id] = dropoff.duration_s
    return out


def _groups(predictions: Iterable[Prediction]) -> dict[tuple[str, str], list[Prediction]]:
    groups: dict[tuple[str, str], list[Prediction]] = defaultdict(list)
    for p in predictions:
        groups[(p.role, p.model_version)].append(p)
    # the champion first, then challengers, each by version
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0] != "champion", kv[0][0], kv[0][1])))


def version_stats(version: str, role: str, preds: list[Prediction], actuals: dict[str, float]) -> VersionStats:
    """MAE, RMSE and MAE by hour of ``preds`` against ``actuals``."""
    pairs = [(p.predicted_duration_s, actuals[p.trip_id], (p.event_time // HOUR_MS) % 24)
             for p in preds if p.trip_id in actuals]
    if not pairs:
        return VersionStats(version, role, len(preds), 0, None, None, (None,) * 24)
    pred, actual, hour = (np.asarray(c) for c in zip(*pairs, strict=True))
    err = pred - actual
    by_hour: list[float | None] = []
    for h in range(24):
        mask = hour == h
        by_hour.append(float(np.mean(np.abs(err[mask]))) if mask.any() else None)
    return VersionStats(version, role, len(preds), len(pairs), float(np.mean(np.abs(err))),
                        float(np.sqrt(np.mean(err**2))), tuple(by_hour))


def version_diff(version: str, preds: list[Prediction], baseline: str, base_preds: list[Prediction],
                 threshold: float) -> VersionDiff:
    """Trips where ``preds`` differ from ``base_preds`` by more than ``threshold`` (relative to the baseline)."""
    base = {p.trip_id: p.predicted_duration_s for p in base_preds}
    rel = [abs(p.predicted_duration_s - base[p.trip_id]) / max(abs(base[p.trip_id]), 1e-9)
           for p in preds if p.trip_id in base]
    return VersionDiff(version, baseline, len(rel), sum(1 for r in rel if r > threshold), threshold,
                       max(rel, default=0.0))


def build_report(result: ReplayResult, predictions: list[Prediction], actuals: dict[str, float],
                 diff_threshold: float = DEFAULT_DIFF_THRESHOLD) -> ReplayReport:
    """The report of a replay from its predictions and the archive's actual durations."""
    groups = _groups(predictions)
    stats = tuple(version_stats(version, role, preds, actuals) for (role, version), preds in groups.items())
    diffs: list[VersionDiff] = []
    champion = next(((k, v) for k, v in groups.items() if k[0] == "champion"), None)
    if champion is not None:
        for (role, version), preds in groups.items():
            if role != "champion":
                diffs.append(version_diff(version, preds, champion[0][1], champion[1], diff_threshold))
    return ReplayReport(
        archive=str(result.archive), events=result.events, predictions=result.predictions,
        dead_letters=result.dead_letters, dead_letter_kinds=dict(result.dead_letter_kinds), dropoffs=len(actuals),
        seconds=round(result.seconds, 3), events_per_s=round(result.events_per_s, 1), versions=stats,
        diffs=tuple(diffs),
    )


# --- plots ------------------------------------------------------------------------------------


def _label(s: VersionStats) -> str:
    return f"{s.version} ({s.role})"


def write_plots(report: ReplayReport, predictions: list[Prediction], actuals: dict[str, float],
                out_dir: Path) -> dict[str, Path]:
    """The PNG plots (only those the data allows: errors need actual durations); name -> path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _groups(predictions)
    with_actual = [(s, groups[(s.role, s.version)]) for s in report.versions if s.with_actual]
    if not with_actual:
        return {}
    written: dict[str, Path] = {}

    def pairs(preds: list[Prediction]) -> tuple[np.ndarray, np.ndarray]:
        kept = [(p.predicted_duration_s, actuals[p.trip_id]) for p in preds if p.trip_id in actuals]
        return np.asarray([k[0] for k in kept]), np.asarray([k[1] for k in kept])

    fig, ax = plt.subplots(figsize=(6, 6))
    top = 0.0
    for s, preds in with_actual:
        pred, actual = pairs(preds)
        ax.scatter(actual, pred, s=4, alpha=0.4, label=_label(s))
        top = max(top, float(np.percentile(np.concatenate([pred, actual]), 99.5)))
    ax.plot([0, top], [0, top], color="black", linewidth=0.8, label="predicted = actual")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="actual duration (s)", ylabel="predicted duration (s)",
           title="Predicted vs actual")
    ax.legend(loc="upper left", fontsize=8)
    written["predicted_vs_actual"] = _save(fig, out_dir / PLOTS["predicted_vs_actual"])

    fig, axes = plt.subplots(len(with_actual), 1, figsize=(7, 2.6 * len(with_actual)), squeeze=False, sharex=True)
    errors = [pairs(preds) for _, preds in with_actual]
    all_err = np.concatenate([p - a for p, a in errors])
    lo, hi = np.percentile(all_err, [0.5, 99.5])
    bins = np.linspace(lo, hi, 60)
    for ax, (s, _), (pred, actual) in zip(axes[:, 0], with_actual, errors, strict=True):
        ax.hist(np.clip(pred - actual, lo, hi), bins=bins)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set(ylabel="trips", title=f"{_label(s)}: MAE {s.mae:.1f} s, RMSE {s.rmse:.1f} s")
    axes[-1, 0].set_xlabel("predicted - actual (s), tails clipped at the 0.5 and 99.5 percentiles")
    written["error_histogram"] = _save(fig, out_dir / PLOTS["error_histogram"])

    fig, ax = plt.subplots(figsize=(7, 4))
    for s, _ in with_actual:
        ax.plot(range(24), [np.nan if v is None else v for v in s.mae_by_hour], marker="o", label=_label(s))
    ax.set(xlabel="hour of day (pick-up, city time)", ylabel="MAE (s)", title="MAE by hour of day", xticks=range(24))
    ax.legend(fontsize=8)
    written["mae_by_hour"] = _save(fig, out_dir / PLOTS["mae_by_hour"])
    return written


def _save(fig, path: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


# --- the document -----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _tables(report: ReplayReport) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    head = ["version", "role", "predictions", "with actual", "MAE (s)", "RMSE (s)"]
    rows = [[s.version, s.role, str(s.predictions), str(s.with_actual), _num(s.mae), _num(s.rmse)]
            for s in report.versions]
    diff_head = ["version", "against", "trips compared", "differ by more than", "trips", "share", "max difference"]
    diff_rows = [[d.version, d.baseline, str(d.compared), f"{d.threshold:.0%}", str(d.differing),
                  f"{d.differing / d.compared:.1%}" if d.compared else "-", f"{d.max_relative:.1%}"]
                 for d in report.diffs]
    return head, rows, diff_head, diff_rows


def _facts(report: ReplayReport) -> list[str]:
    kinds = ", ".join(f"{k}: {n}" for k, n in report.dead_letter_kinds.items())
    facts = [
        f"archive: {report.archive}",
        f"trip events replayed: {report.events} in {report.seconds:.2f} s ({report.events_per_s:,.0f} events/s)",
        f"dead letters: {report.dead_letters}" + (f" ({kinds})" if kinds else ""),
        f"drop-offs (actual durations) in the archive: {report.dropoffs}",
    ]
    if not report.dropoffs:
        facts.append("no drop-offs were recorded: no errors can be computed (record the dropoffs topic too)")
    return facts


def markdown(report: ReplayReport, plots: dict[str, Path]) -> str:
    """The report as Markdown, the plots linked by file name."""
    head, rows, diff_head, diff_rows = _tables(report)

    def table(h: list[str], r: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(h) + " |", "|" + "---|" * len(h), *("| " + " | ".join(x) + " |" for x in r)]

    lines = ["# Replay report", "", *(f"- {f}" for f in _facts(report)), "", "## Versions", "", *table(head, rows)]
    if diff_rows:
        lines += ["", "## Differences between versions", "", *table(diff_head, diff_rows)]
    titles = {"predicted_vs_actual": "Predicted vs actual", "error_histogram": "Error histogram per version",
              "mae_by_hour": "MAE by hour of day"}
    for name, path in plots.items():
        lines += ["", f"## {titles[name]}", "", f"![{titles[name]}]({path.name})"]
    return "\n".join(lines) + "\n"


def html_document(report: ReplayReport, plots: dict[str, Path]) -> str:
    """The report as a standalone HTML page beside its PNG files."""
    head, rows, diff_head, diff_rows = _tables(report)
    esc = html.escape

    def table(h: list[str], r: list[list[str]]) -> str:
        return ("<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in h) + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in x) + "</tr>" for x in r) + "</table>")

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Replay report</title>",
             "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px}"
             "table{border-collapse:collapse}</style></head><body><h1>Replay report</h1><ul>",
             *(f"<li>{esc(f)}</li>" for f in _facts(report)), "</ul><h2>Versions</h2>", table(head, rows)]
    if diff_rows:
        parts += ["<h2>Differences between versions</h2>", table(diff_head, diff_rows)]
    for path in plots.values():
        parts.append(f"<p><img src='{esc(path.name)}' alt='{esc(path.stem)}'></p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(report: ReplayReport, predictions: list[Prediction], actuals: dict[str, float], out_dir: Path,
                 fmt: str = "md") -> Path:
    """Write ``summary.json``, the plots and ``report.md`` (or ``report.html``); returns the report's path."""
    if fmt not in ("md", "html"):
        raise ValueError(f"report format {fmt!r} is not md or html")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARY_FILE).write_text(report.to_json())
    plots = write_plots(report, predictions, actuals, out_dir)
    path = out_dir / f"report.{fmt}"
    path.write_text(markdown(report, plots) if fmt == "md" else html_document(report, plots))
    return path
