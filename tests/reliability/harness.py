"""Small pieces the reliability tests share: models to publish, trips in the background, metrics."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edml.model_topic.publisher import publish_model
from edml.schemas.records import ModelRecord
from edml.trainer.generator import GeneratedTrip
from edml.trainer.producing import produce_trips

from edml.core.config import Settings
from tests.integration.scorer_process import ScorerProcess, statuses, wait_until

NAME = "trip-duration"


@dataclass(frozen=True)
class TinyModels:
    """Folders shaped like ``edml train --out`` holding tiny real SavedModels."""

    v1: Path
    v2: Path
    wrong_signature: Path
    nan: Path


def publish(settings: Settings, model_dir: Path, version: str, signing_key: bytes | Path | None = None,
            store_uri: str | None = None) -> ModelRecord:
    """Publish ``model_dir`` as ``version`` of NAME (the gate's metric comparison is forced)."""
    return publish_model(settings, model_dir, NAME, version=version, force=True, signing_key=signing_key,
                         store_uri=store_uri)


class BackgroundTrips:
    """Produces trips at a steady rate (None: as fast as it can) from a thread while a test does other things."""

    def __init__(self, settings: Settings, trips: Sequence[GeneratedTrip], rate: float | None) -> None:
        self.trips = trips
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(settings, rate), daemon=True)

    def _run(self, settings: Settings, rate: float | None) -> None:
        try:
            produce_trips(settings, self.trips, rate=rate)
        except BaseException as e:  # reported by join()
            self.error = e

    def start(self) -> BackgroundTrips:
        """Start producing."""
        self._thread.start()
        return self

    def join(self, timeout: float = 300) -> None:
        """Wait until every trip is delivered; re-raise the producer's error."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the trip producer did not finish"
        if self.error is not None:
            raise self.error

    @property
    def ids(self) -> list[str]:
        """Every trip id, in order."""
        return [t.pickup.trip_id for t in self.trips]


@contextmanager
def running(scorer: ScorerProcess) -> Iterator[ScorerProcess]:
    """Start ``scorer`` and stop it (SIGTERM) at the end, whatever happens in between."""
    scorer.start()
    try:
        yield scorer
    finally:
        scorer.stop()


def wait_for(condition: Callable[[], object], timeout: float, scorer: ScorerProcess, what: str = "") -> None:
    """``wait_until`` that shows the scorer's log (read at the failure, not before) when time runs out."""
    try:
        wait_until(condition, timeout)
    except AssertionError:
        log = scorer.log()
        raise AssertionError(f"{what or 'condition'} not met within {timeout:.0f}s; scorer log:\n{log}") from None


def metric(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (all label sets) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_status(settings: Settings, version: str, status: str, timeout: float = 60, log: str = "") -> str:
    """Wait for a model status event of ``version`` with ``status``; returns its reason."""
    found: list[str] = []

    def seen() -> bool:
        found[:] = [s.reason for s in statuses(settings) if s.version == version and s.status == status]
        return bool(found)

    wait_until(seen, timeout, message=f"no {status!r} status for {version}\n{log}")
    return found[0]
