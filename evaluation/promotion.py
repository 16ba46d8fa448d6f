"""Promotion of a shadow challenger: only when its live loss beats the champion's by a margin.

The loss is the task's (lower is better): MAE for regression, log loss for binary classification
(:data:`edml.pipelines.figures.LOSS`). The comparison uses the last K windows in which *both*
versions were evaluated, so both are measured on the same events (the scorer scores every event
with every version). A window counts only when the two counts are alike (the smaller at least
:data:`FAIR_SHARE` of the larger): in the window a challenger was loaded in, or a first emission
before most labels arrived, the two would be measured on different events. Each side's loss is
the count-weighted mean over those windows. The challenger wins when

    challenger loss < champion loss x (1 - margin)

and there are K such windows. The new champion record is the challenger's own record (from the
model topic's history, or rebuilt from its artifact's manifest when compaction removed it),
with ``challengers`` = the other challengers, plus the old champion unless it is retired.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from edml.evaluation.scores import VersionWindow, by_version, format_time, loss_label, loss_metric, read_score_windows
from edml.schemas.records import ModelRecord, ScoreWindow

from edml.core.config import Settings
from edml.core.errors import OperatorError


class PromotionError(OperatorError):
    """The promotion cannot be attempted as asked (no such model, version already champion, ...)."""


@dataclass(frozen=True)
class VersionScore:
    """One version's live loss over the compared windows."""

    version: str
    count: int
    loss: float


@dataclass(frozen=True)
class Comparison:
    """Champion versus challenger over the same windows."""

    model_name: str
    champion: VersionScore
    challenger: VersionScore
    windows: tuple[tuple[VersionWindow, VersionWindow], ...]  # (champion, challenger) per window, oldest first
    wanted_windows: int
    margin: float
    metric: str = "mae"  # the ScoreWindow field compared, lower is better

    @property
    def loss_label(self) -> str:
        """How the compared loss is named in tables."""
        return loss_label(self.metric)

    @property
    def enough_windows(self) -> bool:
        """Whether K common windows exist."""
        return len(self.windows) >= self.wanted_windows

    @property
    def threshold(self) -> float:
        """The loss the challenger must get below."""
        return self.champion.loss * (1.0 - self.margin)

    @property
    def challenger_wins(self) -> bool:
        """K common windows and the challenger's loss below the champion's by the margin."""
        return self.enough_windows and self.challenger.loss < self.threshold

    def verdict(self) -> str:
        """One line: what the comparison says."""
        c, ch = self.champion, self.challenger
        if not self.windows:
            return f"no window has evaluations of both {c.version} and {ch.version}: nothing to compare yet"
        gain = (c.loss - ch.loss) / c.loss if c.loss else 0.0
        fmt = ".1f" if self.metric == "mae" else ".4f"
        head = (f"{ch.version} {self.loss_label} {ch.loss:{fmt}} vs {c.version} {c.loss:{fmt}} over "
                f"{len(self.windows)} window(s), {ch.count} and {c.count} evaluated ({gain:+.1%}; "
                f"needs < {self.threshold:{fmt}}, margin {self.margin:.0%})")
        if not self.enough_windows:
            return f"{head}: only {len(self.windows)} of the {self.wanted_windows} windows asked for"
        return f"{head}: {'challenger wins' if self.challenger_wins else 'champion holds'}"

    def rows(self) -> list[tuple[str, int, str, int, str]]:
        """Per window: start, champion count, champion loss, challenger count, challenger loss."""
        fmt = ".1f" if self.metric == "mae" else ".4f"
        return [(format_time(a.window_start), a.count, f"{a.loss(self.metric):{fmt}}", b.count,
                 f"{b.loss(self.metric):{fmt}}") for a, b in self.windows]


def _weighted(version: str, rows: list[VersionWindow], metric: str) -> VersionScore:
    n = sum(r.count for r in rows)
    return VersionScore(version, n, sum(r.loss(metric) * r.count for r in rows) / n if n else float("nan"))


FAIR_SHARE = 0.5


def _alike(a: VersionWindow, b: VersionWindow) -> bool:
    low, high = sorted((a.count, b.count))
    return low > 0 and low >= FAIR_SHARE * high


def compare(
    windows: list[ScoreWindow], model_name: str, champion: str, challenger: str, last: int, margin: float
) -> Comparison:
    """Compare two versions of ``model_name`` over their last ``last`` common windows (alike counts)."""
    if last < 1:
        raise PromotionError(f"--windows must be at least 1, got {last}")
    if not 0 <= margin < 1:
        raise PromotionError(f"--margin is a fraction in [0, 1), got {margin}")
    mine = [w for w in windows if w.model_name == model_name]
    metric = loss_metric(mine)
    merged = by_version(mine)
    starts = sorted(
        s for (v, s) in merged
        if v == champion and (challenger, s) in merged and _alike(merged[(v, s)], merged[(challenger, s)])
    )[-last:]
    pairs = tuple((merged[(champion, s)], merged[(challenger, s)]) for s in starts)
    return Comparison(
        model_name,
        _weighted(champion, [a for a, _ in pairs], metric),
        _weighted(challenger, [b for _, b in pairs], metric),
        pairs,
        last,
        margin,
        metric,
    )


def champion_record(challenger: ModelRecord, old_champion: ModelRecord, keep_old: bool, now_ms: int) -> ModelRecord:
    """The challenger's record as the new champion; the old champion stays as a challenger if ``keep_old``."""
    others = [v for v in old_champion.challengers if v != challenger.version]
    if keep_old and old_champion.version not in others:
        others.append(old_champion.version)
    # the old signature covered other bytes (challengers changed): it is re-signed or left empty
    return dataclasses.replace(challenger, challengers=others, published_at=now_ms, signature_ed25519=None)


def _record_of_version(settings: Settings, name: str, version: str) -> ModelRecord:
    from edml.model_topic.publisher import record_from_manifest, record_history

    matches = [r for r in record_history(settings, name) if r.version == version]
    if matches:
        return matches[-1]
    # compaction keeps only the latest record per name: rebuild it from the artifact's manifest
    from edml.model_topic.artifact import read_manifest, sha256_hex
    from edml.model_topic.stores import StoreError, open_store

    store = open_store(settings.artifact_store_uri)
    try:
        uri = store.artifact_uri(name, version)
        data = store.get(uri)
    except StoreError as e:
        raise PromotionError(f"{name} {version} is neither on the model topic nor in {store.uri} ({e})") from None
    return record_from_manifest(read_manifest(data), uri, sha256_hex(data), len(data))


@dataclass(frozen=True)
class PromotionResult:
    """What ``promote`` did."""

    comparison: Comparison
    promoted: bool
    forced: bool
    record: ModelRecord | None


def promote(
    settings: Settings,
    name: str,
    challenger: str,
    *,
    last: int = 4,
    margin: float = 0.05,
    force: bool = False,
    keep_old: bool = True,
    signing_key: Path | None = None,
    now_ms: int,
) -> PromotionResult:
    """Publish ``challenger`` as the champion of ``name`` when it beats the champion (or ``force``)."""
    from edml.model_topic.publisher import desired_records, publish_record

    current = desired_records(settings).get(name)
    if current is None:
        raise PromotionError(f"model {name} has no record on {settings.topics.models}: nothing to promote over")
    if current.version == challenger:
        raise PromotionError(f"{name} {challenger} is already the champion")
    comparison = compare(read_score_windows(settings, name), name, current.version, challenger, last, margin)
    if not (comparison.challenger_wins or force):
        return PromotionResult(comparison, False, False, None)
    if settings.model_public_key and signing_key is None:
        raise PromotionError("scorers verify record signatures (model_public_key is set): pass --signing-key")
    record = champion_record(_record_of_version(settings, name, challenger), current, keep_old, now_ms)
    if signing_key is not None:
        from edml.model_topic.signing import read_key, sign_record

        record = sign_record(record, read_key(signing_key))
    publish_record(settings, record)
    return PromotionResult(comparison, True, force and not comparison.challenger_wins, record)
