"""pyproject.toml describes an installable package: entry point, dependencies matching requirements.txt, packages."""

import importlib
import os
import subprocess
import sys

import pytest
from conftest import REPO

tomllib = pytest.importorskip("tomllib")
requirements = pytest.importorskip("packaging.requirements")

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_console_script_points_to_an_existing_callable():
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["fer-core"] == "fer_core.cli:main"
    for target in scripts.values():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_build_backend_and_package_selection():
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"
    setuptools = pytest.importorskip("setuptools")
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(setuptools.find_packages(str(REPO), include=include))
    on_disk = {str(p.parent.relative_to(REPO)).replace(os.sep, ".") for p in (REPO / "fer_core").rglob("__init__.py")}
    assert found == on_disk and all(p.split(".")[0] == "fer_core" for p in found)
    assert "assets/*" in PYPROJECT["tool"]["setuptools"]["package-data"]["fer_core"]


def test_dependencies_accept_the_pins_in_requirements_txt():
    deps = {}
    for spec in PYPROJECT["project"]["dependencies"]:
        r = requirements.Requirement(spec)
        deps[r.name.lower()] = r
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        for spec in extra:
            r = requirements.Requirement(spec)
            deps.setdefault(r.name.lower(), r)
    assert str(deps["torch"].specifier) == "==2.13.0"
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        pin = requirements.Requirement(line)
        assert pin.name.lower() in deps, f"{pin.name} is in requirements.txt but not in pyproject.toml"
        for s in pin.specifier:
            if s.operator == "==":
                assert deps[pin.name.lower()].specifier.contains(s.version, prereleases=True), (pin, deps[pin.name])


def test_python_m_fer_core_help_exits_0():
    r = subprocess.run([sys.executable, "-m", "fer_core", "--help"], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0 and "usage:" in r.stdout and "train" in r.stdout
