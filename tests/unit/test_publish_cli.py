"""``edml publish --model-dir``: operator mistakes about the folder are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EDML = [sys.executable, "-m", "edml.cli"]


def _publish(model_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # an unreachable broker: the folder is checked before anything talks to Kafka
    return subprocess.run([*EDML, "publish", "--model-dir", str(model_dir), "-b", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_a_missing_model_dir_is_an_operator_mistake(tmp_path: Path) -> None:
    done = _publish(tmp_path / "models" / "nope", tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"edml: error: --model-dir {tmp_path / 'models' / 'nope'} does not exist: "
        "pass the folder `edml train --out` wrote"
    ]


def test_the_saved_model_folder_itself_suggests_its_parent(tmp_path: Path) -> None:
    saved_model = tmp_path / "models" / "m1" / "saved_model"
    saved_model.mkdir(parents=True)
    (saved_model / "saved_model.pb").write_bytes(b"")
    done = _publish(saved_model, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"edml: error: --model-dir {saved_model} is a SavedModel folder itself")
    assert f"--model-dir {tmp_path / 'models' / 'm1'}" in lines[0]
