"""Long commands show progress on a terminal and stay quiet in CI and in logs."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from edml.cli.progress import interactive

EDML = [sys.executable, "-m", "edml.cli"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "env", "shown"),
    [
        (_Terminal(), {}, True),
        (_Terminal(), {"CI": "false"}, True),
        (_Terminal(), {"CI": "true"}, False),
        (_Terminal(), {"CI": "1"}, False),
        (_Terminal(), {"CI": "gitlab"}, False),
        (io.StringIO(), {}, False),
    ],
    ids=["terminal", "ci-false", "ci-true", "ci-1", "ci-named", "not-a-terminal"],
)
def test_progress_only_on_a_terminal_outside_ci(stream: io.StringIO, env: dict[str, str], shown: bool) -> None:
    assert interactive(stream, env) is shown


def _generate_on(tmp_path: Path, terminal: bool, ci: str | None) -> tuple[str, str]:
    """``edml generate`` with stderr on a pseudo-terminal or a pipe; returns (stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
    env |= {"COLUMNS": "100", "TERM": "xterm"}
    args = [*EDML, "generate", "--n", "30000", "--out", str(tmp_path / "trips.avro")]
    if not terminal:
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower, env=env, text=True)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the follower side closed: the process ended
                break
            if not chunk:
                break
            chunks.append(chunk)
        out = proc.stdout.read() if proc.stdout else ""
        assert proc.wait(120) == 0
    finally:
        os.close(leader)
    return out, b"".join(chunks).decode(errors="replace")


def test_generate_shows_its_progress_on_a_terminal(tmp_path: Path) -> None:
    out, err = _generate_on(tmp_path, terminal=True, ci=None)
    assert "wrote 30000 trips" in out
    assert "generating 30,000 trips" in err and "writing trips.avro" in err


@pytest.mark.parametrize(("terminal", "ci"), [(False, None), (True, "true")], ids=["log-file", "ci-terminal"])
def test_generate_stays_quiet_in_logs_and_ci(tmp_path: Path, terminal: bool, ci: str | None) -> None:
    out, err = _generate_on(tmp_path, terminal=terminal, ci=ci)
    assert "wrote 30000 trips" in out
    assert err.strip() == ""


def test_following_logs_leaves_the_commands_own_log_set_up_alone() -> None:
    """bench configures its log with basicConfig inside the spinner: the root must still be free."""
    import logging

    from edml.cli.progress import following_logs

    root = logging.getLogger()
    before = list(root.handlers)
    target = logging.getLogger("edml.test-progress")
    with following_logs("working", logger="edml.test-progress"):
        assert root.handlers == before
    assert target.handlers == []
