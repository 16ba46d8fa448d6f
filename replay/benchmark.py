"""Replay throughput for ``make bench``: an archive replayed through a trained model folder.

    from edml.replay.benchmark import measure_replay
    result = measure_replay(Path("models/my-model"), Path("bench/work/replay"), make_archive, key="50000-4242")
    print(result.events_per_s)

``make_archive(folder)`` writes the archive once (for the taxi pipeline, generated trips:
``edml.trainer.recording.generated_messages`` with ``edml.replay.recorder.write_archive``); it is
reused while ``workdir`` holds it. The figure is the scoring dataflow's own run over the archive
(archive read, decode, validate, score in batches, encode, file sink), without model loading or
archive generation.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from edml.replay.run import ReplayResult


def measure_replay(model_dir: Path, workdir: Path, make_archive: Callable[[Path], object], key: str = "archive",
                   batch_size: int = 1000, model_name: str = "trip-duration") -> ReplayResult:
    """Make the archive under ``workdir`` (reused when present; ``key`` names it) and replay it once."""
    from edml.replay.models import load_folder
    from edml.replay.run import replay_archive

    archive = workdir / f"archive-{key}"
    if not (archive / "index.json").exists():
        shutil.rmtree(archive, ignore_errors=True)
        make_archive(archive)
    model = load_folder(Path(model_dir), model_name, Path(model_dir).resolve().name, workdir / "models")
    return replay_archive(archive, model, workdir / "out", batch_size=batch_size)
