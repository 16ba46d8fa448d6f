"""Write a bench run's results: JSON (every figure), a markdown table, a PNG plot (+ dated copies)."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """The machine the run happened on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "os": platform.platform(), "python": platform.python_version(), "load_average": os.getloadavg()}


def git_sha() -> str:
    """The checkout's commit (with -dirty when files differ)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fmt(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    """The results as the README's table (throughput, latency, swap, memory, targets)."""
    m = results["machine"]
    lines = [
        f"Run {results['started_at']} ({results['mode']}, commit {results['commit']}, {results['seconds']:.0f} s) "
        f"on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, Python {m['python']}; "
        f"one local Kafka broker on the same machine; load average at start "
        f"{', '.join(f'{x:.1f}' for x in results['load_average_start'])}.",
        "",
        "| pipeline | processes | trips | events/s | vs ceiling | vs bytewax connectors | vs peer | peak RSS/process "
        "| every round |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["throughput"]:
        rounds = ", ".join(f"{x:,}" for x in r.get("rounds", [])) or "-"
        lines.append(f"| {r['label']} | {r['processes']} | {r['events']:,} | {_fmt(r['events_per_s'])} | "
                     f"{_ratio(r.get('vs_ceiling'))} | {_ratio(r.get('vs_bytewax_connectors'))} | "
                     f"{_ratio(r.get('vs_peer'))} | {_fmt(r['peak_rss_mb'])} MB | "
                     f"{rounds} |")
    lines += [f"\n{r['label']}: {_fmt(r['events_per_s'])} events/s with {r['processes']} process(es), "
              f"{_ratio(r['vs_single_model'])} of the single-model taxi pipeline (edml serve) in the same run."
              for r in results["throughput"] if r.get("vs_single_model") is not None]
    if results.get("latency"):
        lines += ["", "| latency at offered rate | achieved | trips | p50 | p95 | p99 | max |",
                  "|---|---|---|---|---|---|---|"]
        for lat in results["latency"]:
            lines.append(f"| {_fmt(lat['offered_per_s'])}/s | {_fmt(lat['achieved_per_s'])}/s | {lat['trips']:,} | "
                         f"{_fmt(lat['p50_ms'], 1)} ms | {_fmt(lat['p95_ms'], 1)} ms | {_fmt(lat['p99_ms'], 1)} ms | "
                         f"{_fmt(lat['max_ms'], 1)} ms |")
    s = results.get("swap")
    if s:
        lines += ["", f"Model swap at {_fmt(s['rate_per_s'])} trips/s: first v2 prediction "
                      f"{_fmt(s['first_v2_after_publish_ms'])} ms after `publish` returned (publish took "
                      f"{s['publish_seconds']:.1f} s); {s['scored_trips']:,} of {s['trips']:,} trips scored "
                      f"({s['unscored_trips']} unscored; {s['predictions_v1']:,} v1 and {s['predictions_v2']:,} v2 "
                      "predictions)."]
    if results.get("targets"):
        lines += ["", "| target | measured | limit | met |", "|---|---|---|---|"]
        for t in results["targets"]:
            lines.append(f"| {t['name']} | {t['measured']} | {t['limit']} | {'yes' if t['met'] else '**no**'} |")
    prof = results.get("profile")
    if prof and prof.get("self"):
        lines += ["", f"Profile of `edml serve` (1 process, py-spy at 100 Hz, {prof.get('samples', 0)} samples inside "
                      f"the dataflow; {_fmt(prof['events_per_s_under_py_spy'])} events/s while sampled). "
                      "Where the time goes (self):", ""]
        lines += [f"- {share:.1%} {frame}" for frame, share in prof["self"][:10]]
    if results.get("notes"):
        lines += [""] + [f"- {n}" for n in results["notes"]]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Events/s per pipeline (log scale) and latency percentiles per offered rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    runs = results["throughput"]
    short = {"ceiling (edml I/O)": "ceiling\nedml I/O", "ceiling (bytewax I/O)": "ceiling\nbytewax I/O",
             "edml serve": "edml", "inline (model call per trip)": "inline",
             "edml serve --pipeline taxi-routed (two routes + an ensemble)": "edml\n2 routes\n+ ensemble",
             "peer: Quix Streams (model call per message)": "peer\nQuix", "edml replay (archive -> file)": "replay"}
    labels = [f"{short.get(r['label'], r['label'])}\np={r['processes']}" for r in runs]
    colors = ["#888888" if r["label"].startswith("ceiling") else "#1f77b4" if r["label"].startswith("edml")
              else "#ff7f0e" for r in runs]
    ax = axes[0]
    bars = ax.bar(range(len(runs)), [r["events_per_s"] for r in runs], color=colors)
    ax.set_yscale("log")
    ax.set_xticks(range(len(runs)), labels, fontsize=8)
    ax.set_ylabel("events/s (log)")
    ax.set_title("Throughput, one broker, same trips")
    for b, r in zip(bars, runs, strict=True):
        ax.annotate(f"{r['events_per_s']:,.0f}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                    va="bottom", fontsize=7)
    ax = axes[1]
    lat = results.get("latency") or []
    if lat:
        x = range(len(lat))
        for i, (key, label) in enumerate((("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"))):
            ax.bar([xi + (i - 1) * 0.27 for xi in x], [row[key] for row in lat], width=0.27, label=label)
        ax.axhline(100, color="red", lw=0.8, ls="--", label="100 ms")
        ax.set_xticks(list(x), [f"{row['offered_per_s']:,.0f}/s" for row in lat])
        ax.set_ylabel("ms, trip produced -> prediction produced")
        ax.set_title("Latency at offered rates")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """latest.json/.md/.png (latest-quick.* for a quick run) and dated copies in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("-", "")[:15]
    # a quick run never replaces the full run's latest.* (the README's table comes from those)
    name = "latest" if results["mode"] == "full" else f"latest-{results['mode']}"
    paths = {kind: out_dir / f"{name}.{kind}" for kind in ("json", "md", "png")}
    paths["json"].write_text(json.dumps(results, indent=2, default=_jsonable) + "\n")
    paths["md"].write_text(markdown(results))
    plot(results, paths["png"])
    for kind, path in list(paths.items()):
        dated = out_dir / f"{stamp}-{results['mode']}.{kind}"
        shutil.copyfile(path, dated)
    return paths


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
