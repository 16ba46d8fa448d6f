"""Summarise a py-spy raw (collapsed stacks) profile: the frames that take the samples."""

from __future__ import annotations

import collections
import shutil
import sys
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """The py-spy executable beside the running interpreter (the dev extra pins it), or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def wrap(cmd: list[str], out: Path, rate: int = 100) -> list[str]:
    """``cmd`` run under ``py-spy record`` writing collapsed stacks to ``out`` (children too)."""
    exe = py_spy()
    if exe is None:
        return cmd
    return [exe, "record", "--subprocesses", "-r", str(rate), "-f", "raw", "-o", str(out), "--", *cmd]


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.split(':')[0]).name})" if where else name


# Python frames Bytewax calls into while the dataflow runs (the roots of its work)
DATAFLOW_FRAMES = ("next_batch (", "write_batch (", "decode_batch (", "BatchScorer.score (",
                   "PredictionEncoder.encode (", "AlertEncoder.encode (", "DeadLetterEncoder.encode (",
                   "FirstBytes.reuse (", "snapshot (")


def summarise(path: Path, top: int = 15, within: tuple[str, ...] = DATAFLOW_FRAMES) -> dict[str, Any]:
    """Self and inclusive shares of the top frames, over the samples with one of ``within`` on the stack.

    Only samples inside the dataflow's steps count: start-up (imports, model load) is left out.
    """
    self_c: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or not any(w in stack for w in within):
            continue
        count = int(n)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return {"self": [], "inclusive": []}
    return {"self": [(f, round(c / total, 3)) for f, c in self_c.most_common(top)],
            "inclusive": [(f, round(c / total, 3)) for f, c in incl.most_common(top * 2)],
            "samples": total}
