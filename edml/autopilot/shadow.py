"""Which live windows compare a challenger in shadow with the champion fairly: those both scored alike.

A challenger starts scoring when the scorers load it, in the middle of some window; and a window
is first emitted before every label has arrived, then revised, each version's figures on their
own. A window where one version has far fewer evaluations than the other measures the two on
different events (the end of the window, or the first labels), so the comparison keeps only the
windows where the smaller count is at least ``share`` of the larger.
"""

from __future__ import annotations

from collections.abc import Sequence

from edml.evaluation.scores import by_version
from edml.schemas.records import ScoreWindow

FAIR_SHARE = 0.5


def covered_windows(windows: Sequence[ScoreWindow], champion: str, challenger: str,
                    share: float = FAIR_SHARE) -> list[ScoreWindow]:
    """``windows`` without the challenger's windows where one version has under ``share`` of the other's evaluations."""
    merged = by_version(list(windows))
    thin: set[int] = set()
    for (version, start), w in merged.items():
        if version == challenger and (champion, start) in merged:
            counts = sorted((w.count, merged[(champion, start)].count))
            if counts[0] < share * counts[1]:
                thin.add(start)
    return [w for w in windows if not (w.model_version == challenger and w.window_start in thin)]
