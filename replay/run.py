"""Run the scoring dataflow over an archive, in this process, deterministically.

Determinism: each archived partition is read in offset order in batches of ``batch_size``, so
every batch is the same on every run; the scorer stamps predictions with the events' own Kafka
timestamps (``event_clock``), not the wall clock; the sink sorts what it writes. Two replays
of one archive with the same models give byte-identical ``predictions.csv`` files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edml.replay.archive import EVENTS, ArchiveError, ArchiveReader
from edml.replay.file_io import DEFAULT_BATCH_SIZE
from edml.schemas.wire import TopicSerdes

from edml.core.config import Settings
from edml.pipelines.bound import BoundPipeline
from edml.scoring.serving import LoadedModel


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did: counts, wall time and where the output went."""

    archive: Path
    out_dir: Path
    events: int  # event messages read from the archive
    predictions: int  # prediction rows written, every version
    dead_letters: int
    seconds: float  # the dataflow's run time (models were loaded before)
    predictions_path: Path
    dead_letters_path: Path
    champion: str
    challengers: tuple[str, ...]
    dead_letter_kinds: dict[str, int]
    alerts: int = 0  # alerts the pipeline's rules raised on the champion's predictions
    alerts_path: Path | None = None

    @property
    def events_per_s(self) -> float:
        """Replay throughput: event messages a second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def _unwrap(e: BaseException) -> BaseException:
    """The ArchiveError (or KeyboardInterrupt) Bytewax wrapped while a step ran, else ``e``."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, (ArchiveError, KeyboardInterrupt)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return e


def replay_serdes(settings: Settings, bound: BoundPipeline) -> TopicSerdes:
    """The serdes a replay of ``bound``'s archive reads and writes with (``schemas.wire.archive_serdes``)."""
    from edml.schemas.wire import archive_serdes

    return archive_serdes(settings, {settings.topics.trips: bound.schema, settings.topics.labels: bound.label_schema})


def replay_archive(
    archive: Path | str | ArchiveReader,
    champion: LoadedModel,
    out_dir: Path | str,
    challengers: Sequence[LoadedModel] = (),
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
    serdes: TopicSerdes | None = None,
    bound: BoundPipeline | None = None,
    settings: Settings | None = None,
) -> ReplayResult:
    """Score every event of ``archive`` with ``champion`` (and shadow ``challengers``) into ``out_dir``.

    ``bound`` is the pipeline (default: the default pipeline) and ``settings`` its settings
    (``pipeline_settings``; default: the defaults); ``serdes`` (default: ``schemas.wire.archive_serdes``
    of the settings) reads the archive's events in either wire format.

    Runs :func:`dataflows.replay.build_replay_flow` -- the scoring dataflow of ``edml serve`` --
    with ``bytewax.testing.run_main`` (one worker, until the archive ends). Writes ``predictions.csv``,
    ``dead_letters.jsonl`` and ``alerts.csv``; bad events are counted, not fatal. Raises ArchiveError
    (naming the file and byte position) when a segment is damaged.
    """
    from bytewax.testing import run_main
    from edml.dataflows.replay import build_replay_flow
    from edml.replay.file_io import ArchiveSource, PredictionFileSink

    from edml.pipelines.bound import open_pipeline, pipeline_settings
    from edml.scoring.batch import event_clock, scoring_steps
    from edml.scoring.serving import ActiveModels, ServingSet

    reader = archive if isinstance(archive, ArchiveReader) else ArchiveReader(archive)
    settings = settings or Settings()
    if bound is None:
        bound = open_pipeline(settings.pipeline or None, settings)
        settings = pipeline_settings(settings, bound.pipeline)
    serdes = serdes or replay_serdes(settings, bound)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    active = ActiveModels()
    active.swap(ServingSet(champion=champion, challengers=tuple(challengers)))
    active.bootstrapped.set()
    events = 0

    def counted(n: int) -> None:
        nonlocal events
        events += n
        if on_batch is not None:
            on_batch(n)

    role = reader.role_for(EVENTS, settings.topics.trips)
    if role is None:
        raise ArchiveError(f"archive {reader.root} holds no events of pipeline {bound.name} (no role {EVENTS}, "
                           f"nothing from topic {settings.topics.trips}; roles: {', '.join(reader.roles()) or 'none'})")
    source = ArchiveSource(reader, role, batch_size=batch_size, on_batch=counted)
    models = [champion, *challengers]
    sink = PredictionFileSink(out_dir, serdes.topics, [m.prediction_schema for m in models], bound.pipeline.input.key)
    flow = build_replay_flow(source, scoring_steps(active, serdes, bound, clock=event_clock), sink)
    output = sink.output
    started = time.perf_counter()
    try:
        run_main(flow)
        seconds = time.perf_counter() - started
        if source.error is not None:
            raise source.error
        if not output.closed:
            raise RuntimeError("the replay dataflow ended without closing its sink")
        output.publish()
    except BaseException as e:
        output.discard()
        cause = _unwrap(e)
        if cause is e:
            raise
        raise cause from None  # the operator's error, without Bytewax's wrapping
    kinds: dict[str, int] = {}
    for d in output.dead_letters:
        kinds[d.error_kind] = kinds.get(d.error_kind, 0) + 1
    return ReplayResult(
        archive=reader.root, out_dir=out_dir, events=events, predictions=output.predictions,
        dead_letters=len(output.dead_letters), seconds=seconds, predictions_path=output.predictions_path,
        dead_letters_path=output.dead_letters_path, champion=champion.version,
        challengers=tuple(c.version for c in challengers), dead_letter_kinds=dict(sorted(kinds.items())),
        alerts=output.alerts, alerts_path=output.alerts_path,
    )
