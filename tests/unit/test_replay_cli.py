"""``edml replay`` and ``edml record`` as an operator runs them: exit codes and one-line messages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers.savedmodels import write_model_dir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "replay"
STORE = f"file://{FIXTURES / 'artifacts'}"


def edml(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "EDML_ARTIFACT_STORE": STORE}
    env.pop("EDML_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "edml.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr lines that are not TensorFlow's start-up chatter."""
    return [line for line in proc.stderr.splitlines() if line.startswith(("edml:", "replay gate"))]


def test_gate_refuses_a_worse_candidate_with_exit_1_and_one_line(tmp_path: Path) -> None:
    # an arithmetic model far from the truth (40 s a km) against the trained fixture model
    candidate = write_model_dir(tmp_path / "slow-model", base=60.0, per_km=40.0)
    proc = edml("replay", "--input", str(FIXTURES / "archive"), "--model", str(candidate), "--against",
                "fixture-v1", "--out", str(tmp_path / "out"), "--gate", "--tolerance", "0.05", cwd=tmp_path)
    print(proc.stdout, "\n".join(errors(proc)))
    assert proc.returncode == 1, proc.stderr[-3000:]
    refusal = errors(proc)
    assert len(refusal) == 1 and refusal[0].startswith("replay gate refused: candidate slow-model MAE")
    assert "vs champion fixture-v1 MAE" in refusal[0]
    assert "replayed 303 events of pipeline taxi" in proc.stdout and "events/s" in proc.stdout
    assert "dead letters: 3 (bad-magic: 1, null-value: 1, out-of-range: 1)" in proc.stdout
    assert "slow-model vs fixture-v1:" in proc.stdout and "differ by more than 10%" in proc.stdout
    assert "mae " in proc.stdout and "(predicted_duration_s vs duration_s)" in proc.stdout
    for name in ("predictions.csv", "dead_letters.jsonl", "report.md", "summary.json", "error_by_hour.png"):
        assert (tmp_path / "out" / name).is_file(), name


def test_a_truncated_archive_exits_2_naming_the_file_and_position(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(FIXTURES / "archive", archive)
    segment = archive / "dropoffs" / "p0" / "000000.avro"
    segment.write_bytes(segment.read_bytes()[:5000])
    proc = edml("replay", "--input", str(archive), "--model", "fixture-v1", "--out", str(tmp_path / "out"),
                cwd=tmp_path)
    print(proc.stderr[-500:])
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, "one line, no traceback"
    assert proc.stderr.startswith(f"edml: error: {segment}: truncated at byte 5000")
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_record_generate_and_an_unknown_version(tmp_path: Path) -> None:
    archive = tmp_path / "generated"
    proc = edml("record", "--generate", "500", "--seed", "3", "--out", str(archive), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "archived 500 generated trips" in proc.stdout
    from edml.replay.archive import ArchiveReader

    assert ArchiveReader(archive).roles() == ["events", "labels"]
    again = edml("record", "--generate", "10", "--out", str(archive), cwd=tmp_path)
    assert again.returncode == 2 and "is not empty" in again.stderr
    missing = edml("replay", "--input", str(archive), "--model", "v404", "--out", str(tmp_path / "out"),
                   cwd=tmp_path)
    assert missing.returncode == 2
    assert errors(missing) == [f"edml: error: trip-duration has no version 'v404' in {STORE} (known: fixture-v1; "
                               "or pass a model folder)"]


def test_an_undeclared_pipeline_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = edml("replay", "--pipeline", "nope", "--input", str(FIXTURES / "archive"), "--model", "fixture-v1",
                "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2
    assert len(errors(proc)) == 1 and errors(proc)[0].startswith("edml: error: no pipeline 'nope'")
    assert not (tmp_path / "out").exists(), "nothing was read or written"
