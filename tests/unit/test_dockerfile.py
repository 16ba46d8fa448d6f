"""The scorer image's Dockerfile, checked by structure (no Docker engine on these machines):
pinned base, multi-stage, non-root, `edml serve` entry point, and a build context that really
builds the edml wheel with its `edml` command.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parents[2]
PINNED_TAG = re.compile(r"^[\w./-]+:(\d+\.\d+\.\d+)[\w.-]*(@sha256:[0-9a-f]{64})?$")
PINNED_DIGEST = re.compile(r"^[\w./:-]+@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    """One FROM ... section of a Dockerfile."""

    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        """Arguments of every ``keyword`` instruction of the stage."""
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    """A parsed Dockerfile: global ARG defaults and its stages."""

    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        """The stage the image is made of."""
        return self.stages[-1]


def parse_dockerfile(text: str) -> Dockerfile:
    """Instructions with line continuations joined and comments dropped; ARGs before FROM resolved."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        lines.append(current + stripped)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--platform")]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


def exec_form(args: str) -> list[str]:
    """The argv of an exec-form (JSON array) ENTRYPOINT/CMD, or the shell words otherwise."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def dockerignore_allows(patterns: list[str], path: str) -> bool:
    """Whether ``path`` (relative, '/'-separated) is in the build context, last matching rule wins."""
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        # a rule on a folder applies to everything inside it
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(fnmatch.fnmatch(prefix, pat) for prefix in prefixes)
        if pat.startswith("**/"):
            hit = hit or any(fnmatch.fnmatch(part, pat[3:]) for part in parts)
        if hit:
            included = negate
    return included


def load() -> Dockerfile:
    """The repository's Dockerfile."""
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def ignore_patterns() -> list[str]:
    """The .dockerignore rules in order."""
    return [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def scorer_run_as() -> int:
    """The uid the Kubernetes StatefulSet runs the scorer as (terraform/modules/scorer)."""
    opts = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True, explicit_blocks=False)
    with (ROOT / "terraform/modules/scorer/main.tf").open() as f:
        doc = hcl2.load(f, serialization_options=opts)
    return int(doc["locals"][0]["run_as"])


def image_problems(dockerfile: Dockerfile) -> list[str]:
    """What makes an image unfit to deploy: unpinned base, one stage, root user, wrong entry point."""
    problems = []
    names = {s.name for s in dockerfile.stages}
    for stage in dockerfile.stages:
        if stage.image in names:
            continue
        if not (PINNED_TAG.match(stage.image) or PINNED_DIGEST.match(stage.image)):
            problems.append(f"base {stage.image} is not pinned to an exact x.y.z tag or a digest")
    if len(dockerfile.stages) < 2:
        problems.append("single-stage build")
    users = dockerfile.final.all("USER")
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("runs as root")
    entry = dockerfile.final.all("ENTRYPOINT")[-1:] + dockerfile.final.all("CMD")[-1:]
    if [w for e in entry for w in exec_form(e)] != ["edml", "serve"]:
        problems.append("entry point is not `edml serve`")
    return problems


# --- the Dockerfile ---------------------------------------------------------------------------------


def test_the_dockerfile_has_no_problems():
    assert image_problems(load()) == []


def test_the_checker_finds_an_unfit_image():
    bad = parse_dockerfile('FROM python:3.11-slim\nRUN pip install .\nENTRYPOINT ["python", "-m", "edml"]\n')
    assert image_problems(bad) == [
        "base python:3.11-slim is not pinned to an exact x.y.z tag or a digest",
        "single-stage build",
        "runs as root",
        "entry point is not `edml serve`",
    ]
    latest = parse_dockerfile("FROM python:latest AS a\nFROM a AS b\nUSER root\nCMD edml serve\n")
    assert image_problems(latest) == ["base python:latest is not pinned to an exact x.y.z tag or a digest",
                                      "runs as root"]


def test_base_images_are_pinned_to_an_exact_release_never_latest():
    dockerfile = load()
    python_minor = re.search(r">=(3\.\d+)", tomllib.loads((ROOT / "pyproject.toml").read_text())
                             ["project"]["requires-python"]).group(1)
    stage_names = {s.name for s in dockerfile.stages}
    for stage in dockerfile.stages:
        if stage.image in stage_names:
            continue
        assert ":latest" not in stage.image and ":" in stage.image, stage.image
        tag = PINNED_TAG.match(stage.image)
        assert tag or PINNED_DIGEST.match(stage.image), f"{stage.image} is not pinned to x.y.z or a digest"
        if tag:
            assert tag.group(1).startswith(python_minor + "."), f"{stage.image} is not Python {python_minor}"


def test_multi_stage_build_copies_only_the_virtualenv_into_the_runtime():
    dockerfile = load()
    assert len(dockerfile.stages) >= 2
    builder, final = dockerfile.stages[0], dockerfile.final
    assert builder.name and final.name and builder.name != final.name
    assert builder.image == final.image, "builder and runtime must share the base (the venv links its python)"
    copies = final.all("COPY")
    assert copies and all(c.startswith(f"--from={builder.name} ") for c in copies), copies
    assert any("pip wheel" in run for run in builder.all("RUN")), "the builder builds the edml wheel"
    assert any("-c requirements.lock" in run for run in builder.all("RUN")), "dependencies come from the lock"
    assert not any("pip" in run or "apt-get" in run for run in final.all("RUN")), "the runtime installs nothing"


def test_the_image_runs_as_a_numeric_non_root_user_matching_the_statefulset():
    final = load().final
    users = final.all("USER")
    assert users, "the runtime stage never switches user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "numeric uid, so Kubernetes runAsNonRoot can verify it"
    assert int(user) == scorer_run_as()
    # nothing runs as root after the switch
    keywords = [kw for kw, _ in final.instructions]
    assert "RUN" not in keywords[keywords.index("USER"):]


def test_entry_point_is_edml_serve_and_serve_takes_the_cluster_flags():
    final = load().final
    argv = exec_form(final.all("ENTRYPOINT")[-1]) + exec_form(final.all("CMD")[-1])
    assert argv == ["edml", "serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["edml"] == "edml.cli:main"
    import typer

    from edml.cli import app

    serve = typer.main.get_command(app).commands["serve"]
    flags = {opt for param in serve.params for opt in param.opts}
    assert {"--process-id", "--addresses", "--workers"} <= flags


def test_ports_and_state_dir_agree_with_the_deployment():
    final = load().final
    env = " ".join(final.all("ENV"))
    assert "EDML_METRICS_PORT=9100" in env and "EDML_STATE_DIR=/var/lib/edml" in env
    exposed = {p for e in final.all("EXPOSE") for p in e.split()}
    scorer_vars = (ROOT / "terraform/modules/scorer/variables.tf").read_text()
    for var, port in (("metrics_port", "9100"), ("cluster_port", "2101")):
        assert port in exposed
        assert re.search(rf'variable "{var}" {{[^}}]*default\s+= {port}', scorer_vars), var
    assert re.search(r'variable "state_dir" \{[^}]*default\s+= "/var/lib/edml"', scorer_vars)


# --- the build context ------------------------------------------------------------------------------


def context_files() -> list[str]:
    """Repository files .dockerignore lets into the build context."""
    patterns = ignore_patterns()
    files = []
    for folder, dirs, names in os.walk(ROOT):
        rel_folder = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if rel_folder == "." else rel_folder + "/"
        # skip folders that are excluded and that no '!' rule reaches into (.venv, .git, .edml, ...)
        dirs[:] = [d for d in dirs if dockerignore_allows(patterns, prefix + d)
                   or any(p.startswith(f"!{prefix}{d}/") for p in patterns)]
        files += [prefix + n for n in names if dockerignore_allows(patterns, prefix + n)]
    return files


def test_build_context_holds_the_packages_and_nothing_heavy():
    files = context_files()
    assert {"pyproject.toml", "requirements.lock", "README.md", "edml/cli/root.py"} <= set(files)
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for folder in package_dir.values():
        assert f"{folder}/__init__.py" in files, f"package folder {folder} is left out of the build context"
    for heavy in ("tests/", "kafka/lib/", ".edml/", "terraform/", "tools/", "models/", "data/"):
        assert not any(f.startswith(heavy) for f in files), heavy
    assert not any("__pycache__" in f for f in files)


def test_dockerignore_rules_behave_like_docker():
    rules = ["*", "!edml/", "**/__pycache__"]
    assert dockerignore_allows(rules, "edml/cli.py")
    assert not dockerignore_allows(rules, "edml/__pycache__/cli.cpython-311.pyc")
    assert not dockerignore_allows(rules, "tests/unit/test_x.py")


def test_the_context_builds_a_wheel_with_the_edml_command(tmp_path):
    context = tmp_path / "context"
    for rel in context_files():
        target = context / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / rel).read_bytes())
    out = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
         str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = out.glob("edml-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "edml = edml.cli:main" in entry_points
    assert "edml/cli/commands/serve.py" in names
    assert any(n.startswith("edml/schemas/avro/") and n.endswith(".avsc") for n in names)


def test_parser_reads_continuations_args_and_stage_names():
    parsed = parse_dockerfile(
        "ARG BASE=python:3.11.9-slim\n# comment\nFROM ${BASE} AS build\nRUN a \\\n    && b\n"
        "FROM $BASE AS run\nUSER 0\nCMD [\"x\"]\n"
    )
    assert [(s.image, s.name) for s in parsed.stages] == [("python:3.11.9-slim", "build"),
                                                           ("python:3.11.9-slim", "run")]
    assert parsed.stages[0].all("RUN") == ["a && b"]
    assert parsed.final.all("USER") == ["0"]
    assert not PINNED_TAG.match("python:3.11-slim") and not PINNED_TAG.match("python:latest")
