"""Version strings: commit time and sha from git or CI, build number from the store."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from edml.model_topic.versioning import (
    Revision,
    current_revision,
    next_version,
    parse_version,
    project_version,
    version_prefix,
)


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("x")
    _git(tmp_path, "add", "f")
    env = {
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_COMMITTER_DATE": "2024-03-05T06:07:08+00:00", "GIT_AUTHOR_DATE": "2024-03-05T06:07:08+00:00",
        "PATH": "/usr/bin:/bin",
    }
    _git(tmp_path, "commit", "-q", "-m", "one", env=env)
    return tmp_path


def test_version_from_git_commit_time_and_sha(repo: Path) -> None:
    sha = _git(repo, "rev-parse", "HEAD")
    rev = current_revision(repo, env={})
    assert rev == Revision(sha, dt.datetime(2024, 3, 5, 6, 7, 8, tzinfo=dt.UTC))
    prefix = version_prefix(rev, "0.1.0")
    assert prefix == f"0.1.0-20240305060708-{sha[:7]}"
    assert next_version(prefix, []) == f"{prefix}-1"
    assert parse_version(f"{prefix}-1") == ("0.1.0", "20240305060708", sha[:7], 1)


def test_build_number_is_the_next_one_stored_for_that_revision() -> None:
    prefix = "0.1.0-20240305060708-abcdef1"
    stored = [f"{prefix}-1", f"{prefix}-9", f"{prefix}-10", "0.1.0-20240305060708-1234567-40", f"{prefix}-x"]
    assert next_version(prefix, stored) == f"{prefix}-11"


def test_ci_sha_overrides_and_ci_timestamp_is_used_when_the_commit_is_absent(tmp_path: Path) -> None:
    env = {"CI_COMMIT_SHA": "ABCDEF1234567890", "CI_COMMIT_TIMESTAMP": "2024-01-02T03:04:05+01:00"}
    rev = current_revision(tmp_path, env=env)
    assert rev.sha == "abcdef1234567890"
    assert rev.committed_at == dt.datetime(2024, 1, 2, 2, 4, 5, tzinfo=dt.UTC)
    assert version_prefix(rev, "0.1.0") == "0.1.0-20240102020405-abcdef1"
    with pytest.raises(ValueError, match="not a hex commit id"):
        current_revision(tmp_path, env={"GITHUB_SHA": "main; rm -rf /"})


def test_outside_git_the_version_says_nogit(tmp_path: Path) -> None:
    rev = current_revision(tmp_path, env={})  # tmp_path is outside any git checkout
    assert rev.sha == "" and rev.short == "nogit"
    version = next_version(version_prefix(rev), [])
    parsed = parse_version(version)
    assert parsed is not None and parsed[0] == project_version() and parsed[2:] == ("nogit", 1)
