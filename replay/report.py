"""What a replay shows: figures per model version against the archived labels, and how versions differ.

The pipeline's ``[labels]`` say what is judged: the prediction field (``labels.prediction``, by
default the model's first output) against the label field of the label records, joined by key.

* Per version: predictions, how many have a label in the archive, and the task's figures
  (regression: MAE, RMSE, bias, p90 absolute error; binary: log loss, ROC AUC, accuracy,
  precision and recall at ``labels.threshold``), and the mean absolute error by hour of day of
  the event time (UTC).
* Per challenger: how many of its predictions differ from the champion's for the same key by
  more than ``diff_threshold`` (relative for regression, absolute for binary scores), and the
  largest difference.
* ``report.md`` or ``report.html`` with PNG plots (matplotlib, Agg); ``summary.json`` for machines.
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edml.replay.archive import LABELS, ArchiveReader
from edml.replay.run import ReplayResult
from edml.schemas.serde import DecodeError
from edml.schemas.wire import RecordSerde, TopicSerdes

from edml.pipelines.bound import BoundPipeline
from edml.pipelines.declaration import Pipeline
from edml.pipelines.figures import BINARY, LOSS, REGRESSION, task_figures

HOUR_MS = 3_600_000
DEFAULT_DIFF_THRESHOLD = 0.10
SUMMARY_FILE = "summary.json"
PLOTS = {
    "predicted_vs_actual": "predicted_vs_actual.png",
    "error_histogram": "error_histogram.png",
    "error_by_hour": "error_by_hour.png",
}
# figure -> how the report writes it
_FIGURES = {
    REGRESSION: (("mae", "MAE"), ("rmse", "RMSE"), ("bias", "bias"), ("p90_abs_error", "p90 |error|")),
    BINARY: (("log_loss", "log loss"), ("roc_auc", "ROC AUC"), ("accuracy", "accuracy"), ("precision", "precision"),
             ("recall", "recall")),
}


@dataclass(frozen=True)
class Judging:
    """What the report compares: ``prediction`` (a prediction field) with ``label`` (a label field)."""

    task: str = REGRESSION
    prediction: str = ""
    label: str = ""
    threshold: float = 0.5

    @property
    def loss(self) -> str:
        """The figure a gate compares (lower is better): MAE or log loss."""
        return LOSS[self.task]


def judging_of(pipeline: Pipeline, outputs: Sequence[str]) -> Judging:
    """The pipeline's judging; ``outputs`` are the prediction fields (the first is judged by default)."""
    labels = pipeline.labels
    if labels is None:
        return Judging(prediction=outputs[0] if outputs else "")
    if labels.prediction and outputs and labels.prediction not in outputs:
        raise pipeline.error(f"[labels] prediction = {labels.prediction!r} is not a field of the model's predictions "
                             f"({', '.join(outputs)})")
    return Judging(labels.task, labels.prediction or (outputs[0] if outputs else ""), labels.field, labels.threshold)


@dataclass(frozen=True)
class VersionStats:
    """How one model version did on the archive (figures None without labels)."""

    version: str
    role: str
    predictions: int
    with_label: int
    task: str
    figures: dict[str, float | None] = field(default_factory=dict)
    error_by_hour: tuple[float | None, ...] = (None,) * 24  # mean |prediction - label| by hour of the event time

    @property
    def loss(self) -> float | None:
        """The figure a gate compares: MAE (regression) or log loss (binary)."""
        return self.figures.get(LOSS[self.task])


@dataclass(frozen=True)
class VersionDiff:
    """How far ``version``'s predictions are from ``baseline``'s for the same keys."""

    version: str
    baseline: str
    compared: int
    differing: int  # difference above ``threshold``
    threshold: float
    max_difference: float
    relative: bool  # relative to the baseline (regression) or absolute (binary scores)


@dataclass(frozen=True)
class ReplayReport:
    """Everything the report says, also written as ``summary.json``."""

    archive: str
    events: int
    predictions: int
    dead_letters: int
    dead_letter_kinds: dict[str, int]
    labels: int
    seconds: float
    events_per_s: float
    judging: Judging
    versions: tuple[VersionStats, ...]
    diffs: tuple[VersionDiff, ...]

    def stats(self, version: str, role: str | None = None) -> VersionStats | None:
        """The stats of ``version`` (in ``role`` when given)."""
        return next((v for v in self.versions if v.version == version and (role is None or v.role == role)), None)

    def to_json(self) -> str:
        """The report as canonical JSON (NaN-free: missing values are null)."""
        return json.dumps(asdict(self), indent=1, sort_keys=True, allow_nan=False) + "\n"


def key_text(value: Any) -> str:
    """A key as the predictions file writes it, so label and prediction keys compare."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def label_value(value: Any, task: str) -> float | None:
    """A label field's value as a number for ``task`` (None when it cannot be one)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        if task == BINARY and value not in (0, 1):
            return None
        return float(value)
    return None


def archived_labels(archive: ArchiveReader, serde: RecordSerde[dict[str, Any]], key: str, label: str,
                    task: str = REGRESSION, topic: str = "") -> dict[str, float]:
    """Key (as text) -> label from the archive's label records (undecodable ones skipped; the last one wins).

    The records are the archive's ``labels`` role, or what it recorded from ``topic`` (an older archive).
    """
    out: dict[str, float] = {}
    role = archive.role_for(LABELS, topic)
    if role is None:
        return out
    for msg in archive.messages(role):
        try:
            record = serde.decode(msg.value)
        except DecodeError:
            continue
        value = label_value(record.get(label), task)
        if value is not None and record.get(key) is not None:
            out[key_text(record[key])] = value
    return out


def _groups(predictions: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for p in predictions:
        groups[(p["role"], p["model_version"])].append(p)
    # the champion first, then challengers, each by version
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0] != "champion", kv[0][0], kv[0][1])))


def _key_of(predictions: Sequence[dict[str, Any]]) -> str:
    # the key is the predictions file's first column
    return next(iter(predictions[0])) if predictions else ""


def _judged(p: dict[str, Any], field_name: str) -> float | None:
    value = p.get(field_name)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return float(value) if isinstance(value, int | float) else None


def _pairs(preds: Sequence[dict[str, Any]], labels: dict[str, float], judging: Judging) \
        -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted, label, event time) of the predictions that have a label and a judged value."""
    key = _key_of(preds)
    kept = [(v, labels[k], p["event_time"]) for p in preds
            if (k := key_text(p[key])) in labels and (v := _judged(p, judging.prediction)) is not None]
    if not kept:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    pred, actual, when = zip(*kept, strict=True)
    return np.asarray(pred, dtype=np.float64), np.asarray(actual, dtype=np.float64), np.asarray(when, dtype=np.int64)


def version_stats(version: str, role: str, preds: list[dict[str, Any]], labels: dict[str, float],
                  judging: Judging) -> VersionStats:
    """The task's figures of ``preds`` against ``labels``, and the error by hour."""
    pred, actual, when = _pairs(preds, labels, judging)
    figures = task_figures(judging.task, pred, actual, judging.threshold)
    if not len(pred):
        return VersionStats(version, role, len(preds), 0, judging.task, figures)
    err = np.abs(pred - actual)
    hour = (when // HOUR_MS) % 24
    by_hour = tuple(float(np.mean(err[hour == h])) if (hour == h).any() else None for h in range(24))
    return VersionStats(version, role, len(preds), len(pred), judging.task, figures, by_hour)


def version_diff(version: str, preds: list[dict[str, Any]], baseline: str, base_preds: list[dict[str, Any]],
                 threshold: float, judging: Judging) -> VersionDiff:
    """Keys where ``preds`` differ from ``base_preds`` by more than ``threshold``."""
    key = _key_of(base_preds)
    base = {p[key]: v for p in base_preds if (v := _judged(p, judging.prediction)) is not None}
    relative = judging.task != BINARY
    diffs = []
    for p in preds:
        v, b = _judged(p, judging.prediction), base.get(p[key])
        if v is not None and b is not None:
            diffs.append(abs(v - b) / max(abs(b), 1e-9) if relative else abs(v - b))
    return VersionDiff(version, baseline, len(diffs), sum(1 for d in diffs if d > threshold), threshold,
                       max(diffs, default=0.0), relative)


def build_report(result: ReplayResult, predictions: list[dict[str, Any]], labels: dict[str, float],
                 judging: Judging, diff_threshold: float = DEFAULT_DIFF_THRESHOLD) -> ReplayReport:
    """The report of a replay from its predictions and the archive's labels."""
    groups = _groups(predictions)
    stats = tuple(version_stats(version, role, preds, labels, judging) for (role, version), preds in groups.items())
    diffs: list[VersionDiff] = []
    champion = next(((k, v) for k, v in groups.items() if k[0] == "champion"), None)
    if champion is not None:
        for (role, version), preds in groups.items():
            if role != "champion":
                diffs.append(version_diff(version, preds, champion[0][1], champion[1], diff_threshold, judging))
    return ReplayReport(
        archive=str(result.archive), events=result.events, predictions=result.predictions,
        dead_letters=result.dead_letters, dead_letter_kinds=dict(result.dead_letter_kinds), labels=len(labels),
        seconds=round(result.seconds, 3), events_per_s=round(result.events_per_s, 1), judging=judging,
        versions=stats, diffs=tuple(diffs),
    )


# --- plots ------------------------------------------------------------------------------------


def _label(s: VersionStats) -> str:
    return f"{s.version} ({s.role})"


def _figure_text(s: VersionStats) -> str:
    digits = 3 if s.task == BINARY else 1
    return ", ".join(f"{name} {_num(s.figures.get(k), digits)}" for k, name in _FIGURES[s.task][:2])


def write_plots(report: ReplayReport, predictions: list[dict[str, Any]], labels: dict[str, float],
                out_dir: Path) -> dict[str, Path]:
    """The PNG plots (only those the data allows: errors need labels); name -> path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judging = report.judging
    groups = _groups(predictions)
    with_label = [(s, _pairs(groups[(s.role, s.version)], labels, judging)) for s in report.versions if s.with_label]
    if not with_label:
        return {}
    written: dict[str, Path] = {}
    what, truth = judging.prediction, judging.label or "label"

    if judging.task == REGRESSION:
        fig, ax = plt.subplots(figsize=(6, 6))
        low, top = math.inf, -math.inf
        for s, (pred, actual, _) in with_label:
            ax.scatter(actual, pred, s=4, alpha=0.4, label=_label(s))
            both = np.concatenate([pred, actual])
            low, top = min(low, float(np.percentile(both, 0.5))), max(top, float(np.percentile(both, 99.5)))
        ax.plot([low, top], [low, top], color="black", linewidth=0.8, label="predicted = actual")
        ax.set(xlim=(low, top), ylim=(low, top), xlabel=f"actual {truth}", ylabel=f"predicted {what}",
               title="Predicted vs actual")
        ax.legend(loc="upper left", fontsize=8)
        written["predicted_vs_actual"] = _save(fig, out_dir / PLOTS["predicted_vs_actual"])

    fig, axes = plt.subplots(len(with_label), 1, figsize=(7, 2.6 * len(with_label)), squeeze=False, sharex=True)
    all_err = np.concatenate([pred - actual for _, (pred, actual, _) in with_label])
    lo, hi = np.percentile(all_err, [0.5, 99.5])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 60)
    for ax, (s, (pred, actual, _)) in zip(axes[:, 0], with_label, strict=True):
        ax.hist(np.clip(pred - actual, lo, hi), bins=bins)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set(ylabel="events", title=f"{_label(s)}: {_figure_text(s)}")
    axes[-1, 0].set_xlabel(f"{what} - {truth}, tails clipped at the 0.5 and 99.5 percentiles")
    written["error_histogram"] = _save(fig, out_dir / PLOTS["error_histogram"])

    fig, ax = plt.subplots(figsize=(7, 4))
    for s, _ in with_label:
        ax.plot(range(24), [np.nan if v is None else v for v in s.error_by_hour], marker="o", label=_label(s))
    ax.set(xlabel="hour of day of the event time (UTC)", ylabel=f"mean |{what} - {truth}|",
           title="Error by hour of day", xticks=range(24))
    ax.legend(fontsize=8)
    written["error_by_hour"] = _save(fig, out_dir / PLOTS["error_by_hour"])
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


def _difference(value: float, relative: bool) -> str:
    return f"{value:.1%}" if relative else f"{value:.3f}"


def _tables(report: ReplayReport) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    figures = _FIGURES[report.judging.task]
    digits = 3 if report.judging.task == BINARY else 1
    head = ["version", "role", "predictions", "with label", *(name for _, name in figures)]
    rows = [[s.version, s.role, str(s.predictions), str(s.with_label),
             *(_num(s.figures.get(k), digits) for k, _ in figures)] for s in report.versions]
    diff_head = ["version", "against", "keys compared", "differ by more than", "keys", "share", "max difference"]
    diff_rows = [[d.version, d.baseline, str(d.compared), _difference(d.threshold, d.relative), str(d.differing),
                  f"{d.differing / d.compared:.1%}" if d.compared else "-", _difference(d.max_difference, d.relative)]
                 for d in report.diffs]
    return head, rows, diff_head, diff_rows


def _facts(report: ReplayReport) -> list[str]:
    kinds = ", ".join(f"{k}: {n}" for k, n in report.dead_letter_kinds.items())
    j = report.judging
    facts = [
        f"archive: {report.archive}",
        f"events replayed: {report.events} in {report.seconds:.2f} s ({report.events_per_s:,.0f} events/s)",
        f"dead letters: {report.dead_letters}" + (f" ({kinds})" if kinds else ""),
        f"labels in the archive: {report.labels}" + (f" ({j.label}, {j.task}; judged: {j.prediction}"
                                                     + (f" at threshold {j.threshold:g}" if j.task == BINARY else "")
                                                     + ")" if j.label else ""),
    ]
    if not report.labels:
        facts.append("no labels were recorded: no errors can be computed (record the pipeline's label topic too)")
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
              "error_by_hour": "Error by hour of day"}
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


def write_report(report: ReplayReport, predictions: list[dict[str, Any]], labels: dict[str, float], out_dir: Path,
                 fmt: str = "md") -> Path:
    """Write ``summary.json``, the plots and ``report.md`` (or ``report.html``); returns the report's path."""
    if fmt not in ("md", "html"):
        raise ValueError(f"report format {fmt!r} is not md or html")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARY_FILE).write_text(report.to_json())
    plots = write_plots(report, predictions, labels, out_dir)
    path = out_dir / f"report.{fmt}"
    path.write_text(markdown(report, plots) if fmt == "md" else html_document(report, plots))
    return path


def pipeline_labels(archive: ArchiveReader, bound: BoundPipeline, serdes: TopicSerdes) -> dict[str, float]:
    """The labels of pipeline ``bound`` in ``archive`` (empty when the pipeline declares none)."""
    labels = bound.pipeline.labels
    if labels is None or bound.label_schema is None:
        return {}
    topic = serdes.topics.labels
    return archived_labels(archive, serdes.for_schema(topic, bound.label_schema), labels.key, labels.field,
                           labels.task, topic)
