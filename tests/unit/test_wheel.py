"""The wheel installs one import package, edml, with the repository's folders as its subpackages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_OUTPUT: list[str] = []  # what the build printed (verbose: setuptools' warnings included)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the tracked files (setuptools builds in-tree, so not in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((ROOT / name).read_bytes())
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w",
                            str(out), str(src)], check=True, capture_output=True, text=True)
    BUILD_OUTPUT.append(built.stdout + built.stderr)
    return next(out.glob("edml-*.whl"))


def test_the_build_prints_no_deprecation_warnings(wheel: Path) -> None:
    """An SPDX license string: setuptools has nothing to say about ``project.license`` on install."""
    output = BUILD_OUTPUT[-1]
    assert "project.license" not in output and "License classifiers are deprecated" not in output, output
    assert "SetuptoolsDeprecationWarning" not in output, output


def test_the_only_top_level_package_is_edml(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"edml"}
    # the agreed folders are there, under edml
    for sub in ("schemas", "model_topic", "dataflows", "trainer", "evaluation", "replay", "scoring", "kafka", "core",
                "cli"):
        assert f"edml/{sub}/__init__.py" in names, sub
    assert "edml/schemas/avro/TripPickup.avsc" in names
    assert "edml/trainer/avro/TripExample.avsc" in names
    assert "edml/pipelines/taxi.toml" in names  # the built-in pipeline declaration


def test_the_wheel_imports_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """Unpacked on its own (no checkout on the path), ``edml.schemas`` and the CLI import from the wheel."""
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("import edml.schemas.serde as s, edml.cli, edml.trainer.datafiles as d; "
            "assert s.__file__.startswith({!r}), s.__file__; assert d.SCHEMA_PATH.exists(); "
            "import importlib.util; assert importlib.util.find_spec('schemas') is None; "
            "import edml.pipelines.declaration as p; t = p.load_pipeline('taxi'); "
            "p.check_declaration(t, p.load_schema(t, t.input.schema))".format(str(tmp_path / "site")))
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                   env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
