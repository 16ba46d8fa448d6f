"""Replay throughput for ``make bench``: generated trips replayed through a trained model folder.

    from edml.replay.benchmark import measure_replay
    result = measure_replay(Path("models/my-model"), trips=50_000, workdir=Path("bench/work/replay"))
    print(result.events_per_s)

The figure is the scoring dataflow's own run over the archive (archive read, decode, validate,
score in batches, encode, file sink), without model loading or archive generation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edml.replay.run import ReplayResult


def measure_replay(model_dir: Path, workdir: Path, trips: int = 50_000, seed: int = 4242, partitions: int = 2,
                   batch_size: int = 1000, model_name: str = "trip-duration") -> ReplayResult:
    """Generate ``trips`` into an archive under ``workdir`` (reused when present) and replay them once."""
    from edml.replay.models import load_folder
    from edml.replay.recorder import write_generated
    from edml.replay.run import replay_archive

    archive = workdir / f"archive-{trips}-{seed}-{partitions}"
    if not (archive / "index.json").exists():
        shutil.rmtree(archive, ignore_errors=True)
        write_generated(archive, trips, seed, partitions=partitions)
    model = load_folder(Path(model_dir), model_name, Path(model_dir).resolve().name, workdir / "models")
    return replay_archive(archive, model, workdir / "out", batch_size=batch_size)
