"""The model swap under load: publish v2 while trips flow; time to its first prediction; none unscored."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edml.model_topic.publisher import publish_model
from edml.schemas.serde import prediction_serde

from bench.common import produce_encoded, wait_for_messages
from edml.core.config import Settings
from edml.kafka.reading import read_to_end


@dataclass(frozen=True)
class SwapFigures:
    """What one swap showed."""

    rate_per_s: float
    trips: int
    scored_trips: int  # trips with at least one prediction
    unscored_trips: int
    predictions_v1: int
    predictions_v2: int
    publish_seconds: float  # how long publish_model took (gate + upload + record)
    first_v2_after_publish_ms: float  # from publish returning to the first v2 prediction's timestamp


def measure(settings: Settings, messages: list[tuple[bytes, bytes]], rate: float, v2_dir: Path,
            publish_after_s: float, model_name: str = "trip-duration") -> SwapFigures:
    """Produce ``messages`` at ``rate`` in a thread; publish ``v2_dir`` as v2 after ``publish_after_s``."""
    producing = threading.Thread(target=produce_encoded, args=(settings, settings.topics.trips, messages, rate),
                                 daemon=True)
    producing.start()
    time.sleep(publish_after_s)
    t0 = time.time()
    publish_model(settings, v2_dir, model_name, version="v2", force=True)
    published_ms = time.time() * 1000
    producing.join()
    try:
        wait_for_messages(settings, settings.topics.predictions, len(messages), timeout=120)
    except RuntimeError:
        pass  # counted below: the unscored trips are the finding
    serde = prediction_serde()
    keys = {k for k, _ in messages}
    scored: set[bytes] = set()
    first_v2: int | None = None
    counts = {"v1": 0, "v2": 0}
    for m in read_to_end(settings, settings.topics.predictions):
        if m.key not in keys:
            continue
        scored.add(m.key)
        version = serde.decode(m.value).model_version
        counts[version] = counts.get(version, 0) + 1
        if version == "v2" and (first_v2 is None or m.timestamp_ms < first_v2):
            first_v2 = m.timestamp_ms
    return SwapFigures(
        rate_per_s=rate, trips=len(messages), scored_trips=len(scored), unscored_trips=len(keys - scored),
        predictions_v1=counts["v1"], predictions_v2=counts["v2"], publish_seconds=published_ms / 1000 - t0,
        first_v2_after_publish_ms=float("nan") if first_v2 is None else first_v2 - published_ms,
    )
