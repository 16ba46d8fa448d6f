"""The knobs of the evaluation dataflow, and durations written the way operators write them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edml.core.errors import OperatorError

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


class BadDuration(OperatorError):
    """A duration option that cannot be read, e.g. ``--window 15x``."""


def parse_duration_ms(text: str) -> int:
    """``"90s"``, ``"15m"``, ``"24h"``, ``"1h30m"``, ``"2d"`` or plain seconds -> milliseconds."""
    raw = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return int(float(raw) * 1000)
    pos, total = 0, 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS_MS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise BadDuration(f"{text!r} is not a duration: write e.g. 90s, 15m, 24h, 1h30m or 2d")
    return int(total)


def format_duration_ms(ms: int) -> str:
    """The shortest ``parse_duration_ms`` spelling of ``ms`` (e.g. 5400000 -> ``"1h30m"``)."""
    if ms == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS_MS[unit]
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


@dataclass(frozen=True)
class EvaluationConfig:
    """How the evaluation joins, windows and alerts; times are event-time milliseconds.

    * ``join_timeout_ms``: how long (event time) an unmatched prediction or drop-off waits for
      its other side before it is counted as expired. The original app used 1 h, which left out
      every trip longer than an hour; the default is 24 h.
    * ``join_shards``: the join state is split into this many keyed shards (the unit of
      parallelism across workers); each shard has its own event-time clock.
    * ``window_ms`` / ``lateness_ms``: tumbling windows of the score aggregates, and how long
      (event time) a window waits for stragglers before it is emitted. Evaluations that arrive
      later still update the window: it is emitted again with ``revision + 1``.
    * ``retention_ms``: how long after its end a window is kept for such revisions.
    * ``drift_window_ms``: windows of the drift check (a whole day by default: shorter windows
      compare one part of the day with a whole-day reference and see seasonality, not drift).
    * ``psi_threshold``: alert when a feature's population stability index is above it.
    * ``drift_min_per_bin``: PSI is computed only for windows with at least this many events
      per reference bin (fewer give noise, not signal: E[PSI] of pure noise ~ bins / count).
    """

    join_timeout_ms: int = 24 * 3_600_000
    join_shards: int = 16
    window_ms: int = 15 * 60_000
    lateness_ms: int = 5 * 60_000
    retention_ms: int = 24 * 3_600_000
    drift_window_ms: int = 24 * 3_600_000
    psi_threshold: float = 0.25
    drift_min_per_bin: int = 10

    def __post_init__(self) -> None:
        for name in ("join_timeout_ms", "window_ms", "drift_window_ms"):
            if getattr(self, name) <= 0:
                raise OperatorError(f"{name.removesuffix('_ms')} must be a positive duration")
        if self.lateness_ms < 0 or self.retention_ms < 0:
            raise OperatorError("lateness and retention must not be negative")
        if self.join_shards < 1:
            raise OperatorError(f"join shards must be at least 1, got {self.join_shards}")
        if not self.psi_threshold > 0:
            raise OperatorError(f"the PSI threshold must be positive, got {self.psi_threshold}")
