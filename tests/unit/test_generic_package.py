"""edml is generic: outside the example's code no file of the package names a trip field.

The taxi trip-duration system is one pipeline declaration; its records, generator, trainer and demo
story live in ``trainer/`` (``edml.trainer``), its declaration and Avro schemas are its own files. Every
other file the wheel installs (``edml/`` and the folders pyproject's package-dir maps into it) must
work for any record, so none may say ``pickup``, ``dropoff``, ``trip_distance`` or ``borough``.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRIP_FIELD = re.compile(r"pickup|dropoff|trip_distance|borough", re.IGNORECASE)
EXAMPLE_PACKAGE = "edml.trainer"  # the example's code, with every subpackage
# The taxi pipelines' own files: their declarations and the schemas of their records.
TAXI_FILES = ("edml/pipelines/taxi.toml", "edml/pipelines/taxi-routed.toml", "schemas/avro/Trip*.avsc",
              "schemas/avro/history/Trip*.avsc")
# The settings' defaults name the default pipeline's topics (`trips`, `dropoffs`): names, not fields.
SETTINGS_DEFAULTS = {"edml/core/config.py": 'labels: str = "dropoffs"'}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def package_folder(package: str, package_dir: dict[str, str]) -> Path:
    """The checkout folder of ``package``: the longest package-dir prefix, then the rest of the dotted name."""
    prefix = max((p for p in package_dir if package == p or package.startswith(p + ".")), key=len, default="")
    if not prefix:
        return REPO / package.replace(".", "/")
    rest = package[len(prefix) + 1:].replace(".", "/")
    return REPO / package_dir[prefix] / rest


def installed_files() -> list[Path]:
    """Every Python file and package-data file the wheel installs, outside the example's packages."""
    setuptools = _pyproject()["tool"]["setuptools"]
    package_dir: dict[str, str] = setuptools.get("package-dir", {})
    package_data: dict[str, list[str]] = setuptools.get("package-data", {})
    files: set[Path] = set()
    for package in setuptools["packages"]:
        if package == EXAMPLE_PACKAGE or package.startswith(EXAMPLE_PACKAGE + "."):
            continue
        folder = package_folder(package, package_dir)
        for pattern in ["*.py", *package_data.get(package, [])]:
            files.update(p for p in folder.glob(pattern) if p.is_file())
    return sorted(files)


def _is_taxi_file(relative: str) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in TAXI_FILES)


def trip_field_hits(path: Path) -> list[str]:
    """``file:line: text`` of every line of ``path`` naming a trip field."""
    relative = path.relative_to(REPO).as_posix()
    return [
        f"{relative}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        if TRIP_FIELD.search(line) and SETTINGS_DEFAULTS.get(relative, "\0") not in line
    ]


def test_the_search_covers_every_mapped_folder_and_leaves_out_the_example() -> None:
    scanned = {p.relative_to(REPO).as_posix() for p in installed_files()}
    # each folder package-dir maps into edml, and edml/ itself, is searched (a search of nothing would pass)
    for folder in ("edml/cli", "edml/scoring", "edml/pipelines", "schemas", "model_topic", "dataflows",
                   "evaluation", "replay"):
        assert any(name.startswith(folder + "/") and name.endswith(".py") for name in scanned), folder
    assert "schemas/avro/Prediction.avsc" in scanned  # package data too, not only Python
    assert not any(name.startswith("trainer/") for name in scanned)


def test_the_search_finds_the_trip_fields_of_the_example() -> None:
    # the example's generator is left out of the package search, but it is what a hit looks like
    hits = trip_field_hits(REPO / "trainer" / "generator.py")
    assert any("borough" in hit.lower() for hit in hits)
    assert all(re.match(r"trainer/generator\.py:\d+: ", hit) for hit in hits)


def test_no_installed_file_outside_the_example_names_a_trip_field() -> None:
    hits = [hit for path in installed_files() if not _is_taxi_file(path.relative_to(REPO).as_posix())
            for hit in trip_field_hits(path)]
    assert not hits, f"{len(hits)} lines name a trip field outside trainer/ and the taxi pipeline's files:\n" + (
        "\n".join(hits))
