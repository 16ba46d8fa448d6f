"""The ceiling: a Bytewax Kafka -> Kafka passthrough that copies bytes (no decoding, no model).

Two I/O layers, so the ceiling is the faster of them:

* ``edml``: edml's own source and sink (whole polled batches as items, the same producer
  settings as ``edml serve``) with an identity step: the scoring dataflow minus its work;
* ``bytewax``: Bytewax's ``KafkaSource``/``KafkaSink`` connectors, one item per message, as a
  user would write it.

Run as ``python -m bench.ceiling --io edml --trips T --out O [-i 0 -a host:port;...]``; it ends at
the end of the trips topic. Settings come from the environment like ``edml serve``.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from pathlib import Path

from bytewax import operators as op
from bytewax.dataflow import Dataflow


def edml_io_flow(trips: str, out: str, batch_size: int) -> Dataflow:
    """trips --HeldKafkaSource--> identity --KafkaMessageSink--> out."""
    from edml.core.config import load_settings
    from edml.kafka.sink import KafkaMessageSink, OutgoingMessage
    from edml.kafka.source import HeldKafkaSource

    settings = load_settings()
    flow = Dataflow("bench-ceiling-edml")
    batches = op.input("in", flow, HeldKafkaSource(settings, trips, gate=lambda: True, batch_size=batch_size,
                                                   tail=False))
    copied = op.map("copy", batches, lambda msgs: [OutgoingMessage(out, m.key, m.value) for m in msgs])
    op.output("out", copied, KafkaMessageSink(settings))
    return flow


def bytewax_io_flow(trips: str, out: str, batch_size: int) -> Dataflow:
    """trips --bytewax KafkaSource--> to KafkaSinkMessage --bytewax KafkaSink--> out."""
    from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource

    from edml.core.config import load_settings

    settings = load_settings()
    brokers = [settings.bootstrap_servers]
    flow = Dataflow("bench-ceiling-bytewax")
    msgs = op.input("in", flow, KafkaSource(brokers, [trips], tail=False, batch_size=batch_size,
                                            add_config={"fetch.wait.max.ms": "50"}))
    copied = op.map("copy", msgs, lambda m: KafkaSinkMessage(m.key, m.value))
    op.output("out", copied, KafkaSink(brokers, out, add_config={"linger.ms": "2", "batch.num.messages": "10000",
                                                                  "compression.type": "lz4"}))
    return flow


def main() -> None:
    """Run one process of the passthrough until the trips topic ends."""
    from bytewax.run import cli_main

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--io", choices=("edml", "bytewax"), default="edml")
    parser.add_argument("--trips", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("-i", "--process-id", type=int)
    parser.add_argument("-a", "--addresses")
    parser.add_argument("--sync-dir", type=Path, help="say ready there, then wait for its go file")
    args = parser.parse_args()
    if args.sync_dir:  # every process starts copying at the same moment (see bench/pipelines.py)
        (args.sync_dir / f"ready-{args.process_id or 0}").touch()
        while not (args.sync_dir / "go").exists():
            time.sleep(0.02)
    build = edml_io_flow if args.io == "edml" else bytewax_io_flow
    flow = build(args.trips, args.out, args.batch_size)
    cli_main(flow, workers_per_process=1, process_id=args.process_id,
             addresses=args.addresses.split(";") if args.addresses else None,
             epoch_interval=timedelta(seconds=5))


if __name__ == "__main__":
    main()
