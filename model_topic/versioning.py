"""Model version strings: ``<project version>-<UTC yyyymmddHHMMSS of the commit>-<sha7>-<N>``.

``N`` is the next build number of that revision, found in the artifact store (the highest
``N`` stored for the same prefix, plus one), not in a CI system's job list, so local runs and
any CI compute the same thing.

Where the commit comes from, first match wins:

1. ``EDML_GIT_SHA``, ``GITHUB_SHA`` or ``CI_COMMIT_SHA`` (CI checkouts can be shallow or
   detached); its commit time from ``git show`` when the commit is present, else from
   ``CI_COMMIT_TIMESTAMP`` (GitLab), else the current time;
2. ``git rev-parse HEAD`` and ``git show -s --format=%ct HEAD`` in the working directory.

Outside a git checkout (or before the first commit) the version is
``<project version>-<UTC now>-nogit-<N>``: clearly not reproducible from a commit.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

NOGIT = "nogit"
SHA_ENV_VARS = ("EDML_GIT_SHA", "GITHUB_SHA", "CI_COMMIT_SHA")


@dataclass(frozen=True)
class Revision:
    """The source revision a model is built from: full sha ('' without git) and commit time (UTC)."""

    sha: str
    committed_at: dt.datetime

    @property
    def short(self) -> str:
        """The 7-character sha, or ``nogit``."""
        return self.sha[:7] if self.sha else NOGIT


def project_version() -> str:
    """The installed edml package version (pyproject's ``version``)."""
    try:
        return metadata.version("edml")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def _git(args: list[str], cwd: Path | None) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _parse_timestamp(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def current_revision(cwd: Path | None = None, env: dict[str, str] | None = None) -> Revision:
    """The revision to version a build by (see the module docstring for the order)."""
    env = dict(os.environ if env is None else env)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sha = next((env[v].strip() for v in SHA_ENV_VARS if env.get(v, "").strip()), "")
    if not sha:
        sha = _git(["rev-parse", "--verify", "-q", "HEAD"], cwd) or ""
    if not sha:
        return Revision("", now)
    if not re.fullmatch(r"[0-9a-fA-F]{7,64}", sha):
        raise ValueError(f"git sha {sha!r} is not a hex commit id")
    epoch = _git(["show", "-s", "--format=%ct", sha], cwd)
    if epoch and epoch.isdigit():
        return Revision(sha.lower(), dt.datetime.fromtimestamp(int(epoch), dt.UTC))
    stamp = _parse_timestamp(env.get("CI_COMMIT_TIMESTAMP", ""))
    return Revision(sha.lower(), stamp or now)


def version_prefix(revision: Revision, project: str | None = None) -> str:
    """``<project>-<yyyymmddHHMMSS>-<sha7>``: every build of one revision shares it."""
    return f"{project or project_version()}-{revision.committed_at:%Y%m%d%H%M%S}-{revision.short}"


def build_number(version: str, prefix: str) -> int | None:
    """``N`` of a version made from ``prefix``, or None if the version has another prefix."""
    match = re.fullmatch(re.escape(prefix) + r"-(\d+)", version)
    return int(match.group(1)) if match else None


def next_version(prefix: str, existing: list[str]) -> str:
    """``<prefix>-<N>`` with N one more than the highest stored build of ``prefix`` (1 if none)."""
    numbers = [n for n in (build_number(v, prefix) for v in existing) if n is not None]
    return f"{prefix}-{max(numbers, default=0) + 1}"


def parse_version(version: str) -> tuple[str, str, str, int] | None:
    """``(project, yyyymmddHHMMSS, sha7 or 'nogit', N)`` of a version made here, else None."""
    match = re.fullmatch(r"(.+)-(\d{14})-([0-9a-f]{7}|nogit)-(\d+)", version)
    if not match:
        return None
    return match.group(1), match.group(2), match.group(3), int(match.group(4))
