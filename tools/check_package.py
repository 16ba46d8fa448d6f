"""Check the import contracts (import-linter) and the types (mypy) of the package as installed.

The repository maps its top-level folders into ``edml`` (``edml.schemas`` is ``schemas/``), which
neither tool can see from the checkout: import-linter walks the folder ``edml/`` alone and mypy
does not run setuptools' editable-install finder. So this lays the package out as the wheel does
(the package-dir mapping of pyproject.toml, Python files only) in a temporary folder, runs the
tool there and names the repository's files in what it prints.
Usage: ``python tools/check_package.py layers|types``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lay_out(pyproject: dict, into: Path) -> dict[str, str]:
    """Copy every package's ``.py`` files to where the wheel puts them; laid-out path -> source path."""
    copied = {}
    setuptools = pyproject["tool"]["setuptools"]
    package_dir: dict[str, str] = setuptools.get("package-dir", {})
    for package in setuptools["packages"]:
        # the folder of a package: the longest mapped prefix, then the rest of the dotted name
        prefix = max((p for p in package_dir if package == p or package.startswith(p + ".")), key=len, default="")
        if prefix:
            source = ROOT / package_dir[prefix] / package[len(prefix) + 1:].replace(".", "/")
        else:
            source = ROOT / package.replace(".", "/")
        target = into / package.replace(".", "/")
        target.mkdir(parents=True, exist_ok=True)
        for py in source.glob("*.py"):
            shutil.copy2(py, target / py.name)
            copied[str((target / py.name).relative_to(into))] = str(py.relative_to(ROOT))
    return copied


TOOLS = {
    "layers": ["lint-imports", "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
    "types": ["mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "edml"],
}


def main(argv: list[str]) -> int:
    """Lay the package out and run the check named in ``argv`` on it; exit with the tool's code."""
    if len(argv) != 1 or argv[0] not in TOOLS:
        print(f"usage: check_package.py {'|'.join(TOOLS)}", file=sys.stderr)
        return 2
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    command = [str(Path(sys.executable).with_name(TOOLS[argv[0]][0])), *TOOLS[argv[0]][1:]]
    with tempfile.TemporaryDirectory(prefix="edml-package-") as tmp:
        copied = lay_out(pyproject, Path(tmp))
        result = subprocess.run(command, cwd=tmp, env={**os.environ, "PYTHONPATH": tmp}, capture_output=True,
                                text=True)
    output = result.stdout + result.stderr
    for laid_out, source in sorted(copied.items(), key=lambda kv: -len(kv[0])):
        output = output.replace(laid_out, source)
    print(output, end="")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
