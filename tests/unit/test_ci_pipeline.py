"""The CI pipeline definitions (GitHub Actions and GitLab CI): stage order, main-only publishing,
every step a make target that exists, failures not swallowed, credentials only from the environment."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STAGES = ["test", "package", "train", "replay-gate", "publish-model", "deploy-app"]
# replay-gate compares with the serving champion, so it needs publish-model's credentials
MAIN_ONLY = {"replay-gate", "publish-model", "deploy-app"}
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|SASL_USERNAME|SIGNING_KEY|CREDENTIALS", re.I)


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.M))


def make_targets(command: str) -> list[str]:
    """The targets of every ``make`` invocation in a shell command."""
    targets = []
    command = re.sub(r"\$\{\{.*?\}\}", "EXPR", command)  # GitHub expressions hold spaces
    for part in re.split(r"&&|;|\|\||\n", command):
        words = shlex.split(part.strip()) if part.strip() else []
        if words[:1] != ["make"]:
            continue
        skip = False
        for word in words[1:]:
            if skip:
                skip = False
            elif word in ("-C", "-f", "-o", "-I", "-W"):
                skip = True  # the option's argument
            elif "=" not in word and not word.startswith("-"):
                targets.append(word)
    return targets


@pytest.fixture(scope="module")
def github() -> dict:
    return yaml.safe_load((REPO / ".github/workflows/pipeline.yml").read_text())


@pytest.fixture(scope="module")
def gitlab() -> dict:
    return yaml.safe_load((REPO / ".gitlab-ci.yml").read_text())


def gitlab_jobs(gitlab: dict) -> dict[str, dict]:
    reserved = {"stages", "default", "variables", "include", "workflow"}
    return {k: v for k, v in gitlab.items() if k not in reserved and not k.startswith(".") and isinstance(v, dict)}


def test_github_jobs_run_in_stage_order(github: dict) -> None:
    jobs = github["jobs"]
    assert list(jobs) == STAGES
    for before, after in zip(STAGES, STAGES[1:], strict=False):
        needs = jobs[after]["needs"]
        assert before in ([needs] if isinstance(needs, str) else needs), f"{after} must wait for {before}"


def test_github_publishes_and_deploys_from_main_only(github: dict) -> None:
    for name, job in github["jobs"].items():
        condition = job.get("if", "")
        if name in MAIN_ONLY:
            assert "github.ref == 'refs/heads/main'" in condition and "push" in condition
        else:
            assert "refs/heads/main" not in condition


def test_gitlab_stages_and_main_only_rules(gitlab: dict) -> None:
    assert gitlab["stages"] == STAGES
    jobs = gitlab_jobs(gitlab)
    assert {job["stage"] for job in jobs.values()} == set(STAGES)
    order = {stage: i for i, stage in enumerate(STAGES)}
    for name, job in jobs.items():
        for need in job.get("needs", []):
            assert order[jobs[need]["stage"]] < order[job["stage"]], f"{name} needs a later job {need}"
        rules = job.get("rules", [])
        if job["stage"] in MAIN_ONLY:
            assert rules and all('$CI_COMMIT_BRANCH == "main"' in r["if"] for r in rules), name
        else:
            assert not rules, name


def _github_commands(github: dict) -> dict[str, list[str]]:
    return {name: [s["run"] for s in job["steps"] if "run" in s] for name, job in github["jobs"].items()}


def _gitlab_commands(gitlab: dict) -> dict[str, list[str]]:
    return {name: list(job["script"]) for name, job in gitlab_jobs(gitlab).items()}


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_every_stage_runs_make_targets_that_exist(kind: str, request: pytest.FixtureRequest) -> None:
    data = request.getfixturevalue(kind)
    commands = _github_commands(data) if kind == "github" else _gitlab_commands(data)
    known = makefile_targets()
    called: dict[str, list[str]] = {}
    for job, lines in commands.items():
        targets = [t for line in lines for t in make_targets(line)]
        assert targets, f"{kind} job {job} runs no make target"
        called[job] = targets
        missing = set(targets) - known
        assert not missing, f"{kind} job {job} calls make targets the Makefile lacks: {sorted(missing)}"
    flat = [t for ts in called.values() for t in ts]
    for target in ("data", "train", "publish", "replay-gate", "ci-deploy"):
        assert target in flat, f"{kind}: no stage runs make {target}"
    assert "ci-test" in flat


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_a_failing_step_fails_the_pipeline(kind: str, request: pytest.FixtureRequest) -> None:
    text = (REPO / (".github/workflows/pipeline.yml" if kind == "github" else ".gitlab-ci.yml")).read_text()
    assert "continue-on-error" not in text
    assert "allow_failure" not in text.replace("# no allow_failure", "")
    assert "|| true" not in text and "set +e" not in text


def test_credentials_come_only_from_the_environment(github: dict, gitlab: dict) -> None:
    for name, job in github["jobs"].items():
        for key, value in (job.get("env") or {}).items():
            if SECRET_WORDS.search(key):
                assert str(value).startswith("${{ secrets."), f"github {name}: {key} must come from secrets"
    for path in (".github/workflows/pipeline.yml", ".gitlab-ci.yml"):
        text = (REPO / path).read_text()
        assert "BEGIN" not in text.replace("-----BEGIN", "") and "-----BEGIN" not in text
        assert not re.search(r"(password|token|secret)\s*[:=]\s*['\"]?[A-Za-z0-9/+]{12,}", text, re.I), path
    for name, job in gitlab_jobs(gitlab).items():
        for key, value in (job.get("variables") or {}).items():
            if SECRET_WORDS.search(key):
                assert str(value).startswith("$"), f"gitlab {name}: {key} must come from a CI/CD variable"


def test_make_targets_parse() -> None:
    assert make_targets("make data train MODEL=x") == ["data", "train"]
    assert make_targets("cd a && make -C b publish PUBLISH_ARGS='--force'") == ["publish"]
