"""Runs the scoring dataflow as a service: the model subscriber, then the shared runtime.

``run_scorer`` runs one Bytewax process (with W worker threads) through ``edml.runtime``, which
``edml evaluate`` shares; ``edml.runtime.cluster`` starts P such processes on one host.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edml.core.config import Settings
from edml.core.errors import OperatorError
from edml.pipelines.bound import BoundPipeline, open_pipeline
from edml.runtime.service import (
    FlowOptions,
    check_cluster_port,
    check_topics,
    recovery_config,
    recovery_created_ms,
    run_flow,
    start_metrics,
)

log = logging.getLogger("edml.serve")
# (source, scorer, sink) -> the Bytewax Dataflow to run; edml.dataflows.scoring.build_flow
FlowBuilder = Callable[..., Any]


@dataclass(frozen=True)
class ScorerOptions:
    """How one scoring process runs: the runtime's options, and the scorer's own."""

    flow: FlowOptions = field(default_factory=lambda: FlowOptions(metrics_port=9100))
    batch_size: int = 1000
    keep_versions: int = 3
    model_call: Callable[..., Any] | None = None  # how a model is called on rows; None: once per batch
    tail: bool = True


def start_models(settings: Settings, process_index: int, keep_versions: int,  # noqa: ANN201
                 pipeline: BoundPipeline | None = None):
    """The process's ActiveModels for ``pipeline`` (default: the settings'), fed by a started ModelSubscriber."""
    import tensorflow  # noqa: F401 - imported once here so the first model load is not slowed by it

    from edml.scoring.model_store import ModelStore
    from edml.scoring.serving import ActiveModels
    from edml.scoring.status import StatusReporter
    from edml.scoring.subscriber import ModelSubscriber
    from edml.scoring.trust import record_check

    # One RocksDB per process: RocksDB allows one writer per folder.
    path = settings.state_dir / "model-store" / f"process-{process_index}"
    try:
        store = ModelStore(path, keep=keep_versions)
    except Exception as e:  # rocksdict raises a bare Exception
        if "lock" not in str(e).lower():
            raise
        raise OperatorError(f"model store {path} is in use by another scorer process: give each its own "
                            "--state-dir") from None
    workdir = settings.state_dir / "models" / f"process-{process_index}"
    status = StatusReporter(settings)
    if pipeline is not None and pipeline.pipeline.routed:
        from edml.scoring.routing import ModelSet

        models = ModelSet(pipeline.pipeline)
        # one subscriber per model name, each swapping its own serving set; the first reports records of other names
        subscribers = [ModelSubscriber(settings, active, store, status, workdir=workdir, model_name=name,
                                       check_record=record_check(settings), pipeline=pipeline,
                                       report_others=i == 0)
                       for i, (name, active) in enumerate(models.by_name.items())]
        for subscriber in subscribers:
            subscriber.start()
        return models, Subscribers(subscribers)
    active = ActiveModels()
    subscriber = ModelSubscriber(settings, active, store, status, workdir=workdir,
                                 check_record=record_check(settings), pipeline=pipeline)
    subscriber.start()
    return active, subscriber


@dataclass
class Subscribers:
    """The model subscribers of a routed pipeline's process, stopped together."""

    each: list[Any]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every subscriber."""
        for subscriber in self.each:
            subscriber.stop(timeout)


def run_scorer(settings: Settings, options: ScorerOptions, build_flow: FlowBuilder) -> None:
    """Run one scoring process until stopped: the flow ``build_flow`` makes from the source, scorer and sink.

    The flow is passed in, not imported: the dataflows sit above the runtime they are built from.
    """
    from edml.kafka.security import check_client_settings, describe
    from edml.kafka.sink import KafkaMessageSink
    from edml.kafka.source import HeldKafkaSource
    from edml.model_topic.stores import open_store
    from edml.schemas.oversized import too_large_dead_letters
    from edml.schemas.wire import topic_serdes
    from edml.scoring.batch import FaultPolicy, call_batch, scoring_steps
    from edml.scoring.reemission import EmittedPredictions

    run = options.flow
    # configuration mistakes stop here with one line, not later inside a thread or the dataflow
    bound = open_pipeline(settings.pipeline, settings)
    check_client_settings(settings)
    open_store(settings.artifact_store_uri)
    log.info("kafka: %s", describe(settings))
    check_topics(settings, {settings.topics.trips, settings.topics.models})
    check_cluster_port(run.addresses, run.process_id)
    active, subscriber = start_models(settings, run.process_id or 0, options.keep_versions, bound)
    try:
        start_metrics(run.metrics_port, active.ready, settings.metrics_host)
        recovery, emitted, created_ms = None, None, None
        if run.recovery:
            created_ms = recovery_created_ms(settings, "scoring")  # read before a first start sets it
            recovery = recovery_config(settings, "scoring", run.process_id)
            # trips re-read after a crash are re-emitted with their first predictions' bytes
            emitted = EmittedPredictions(settings)
        # without recovery a restart reads everything again: added partitions need no restart then
        known_parts = settings.state_dir / "recovery" / "scoring.partitions.json" if run.recovery else None
        source = HeldKafkaSource(settings, settings.topics.trips, gate=active.ready, batch_size=options.batch_size,
                                 tail=options.tail, on_resume=emitted, unsnapshotted_since_ms=created_ms,
                                 known_parts=known_parts,
                                 **({} if run.recovery else {"partition_check_s": math.inf}))
        serdes = topic_serdes(settings)
        steps = scoring_steps(active, serdes, bound, emitted=emitted, faults=FaultPolicy.from_settings(settings),
                              call=options.model_call or call_batch)
        sink = KafkaMessageSink(settings, too_large=too_large_dead_letters(settings.topics.dead_letter,
                                                                           serdes.dead_letter))
        run_flow(build_flow(source, steps, sink), run, recovery)
    finally:
        subscriber.stop()
