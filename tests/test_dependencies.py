"""pyproject.toml keeps ranges that users' machines can meet; CI installs the tested pins of
.ci/constraints.txt, and every pin must lie inside its range (else CI tests a combination no
user can install)."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BOUNDED = ("torch", "torchvision", "ray", "mlflow", "open-clip-torch")
"""Packages whose next minor release may change behaviour vlscale relies on."""


def _requirements() -> dict[str, Requirement]:
    project = PYPROJECT["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    found += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    return {canonicalize_name(r.name): r for r in found if canonicalize_name(r.name) != "vlscale"}


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"constraint {line!r} must pin one version"
            pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def test_every_pin_lies_inside_its_range():
    requirements = _requirements()
    for name, pinned in _pins().items():
        if name in requirements:
            assert requirements[name].specifier.contains(pinned, prereleases=True), \
                f"{name}=={pinned} (.ci/constraints.txt) is outside {requirements[name]}"


@pytest.mark.parametrize("name", BOUNDED)
def test_fast_moving_dependencies_have_a_tested_upper_bound(name):
    requirement = _requirements()[name]
    uppers = [s for s in requirement.specifier if s.operator in ("<", "<=")]
    assert uppers, f"{requirement} needs an upper bound at the tested version"
    assert name in _pins(), f"{name} needs its tested pin in .ci/constraints.txt"
    assert requirement.specifier.contains(_pins()[name])


def test_torch_is_a_range_not_a_pin():
    """A pin would make pip replace a user's CUDA/ROCm torch build with the registry's."""
    requirement = _requirements()["torch"]
    assert not any(s.operator == "==" for s in requirement.specifier)
    lower = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert lower and lower[0] < _pins()["torch"], "the range must include older builds"


def test_installed_versions_satisfy_the_ranges():
    for name, requirement in _requirements().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # an optional extra that is not installed here
        assert requirement.specifier.contains(installed, prereleases=True), \
            f"installed {name} {installed} is outside {requirement}"


def test_cluster_extra_brings_the_postgres_driver_and_s3_client():
    cluster = {canonicalize_name(Requirement(r).name)
               for r in PYPROJECT["project"]["optional-dependencies"]["cluster"]}
    assert {"psycopg", "sqlalchemy", "boto3"} <= cluster
